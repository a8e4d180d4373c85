/**
 * Per-feature drift of a live window against the reference profile: PSI and Jensen-Shannon
 * for every feature, KS (on the profile's bins) for numeric ones, chi-square for
 * categorical ones, missing-value rates, and a drift flag per feature from the test's
 * p-value after a Bonferroni correction across the features compared together.
 */
import { bonferroni, chiSquareTest, jensenShannon, ksPValue, ksTest, ksTestBinned, missingRate, psi, type KsResult } from './drift.js';
import { byName, type FeatureKind, type NumericFeatureProfile, type ReferenceProfile } from './profile.js';
import type { ProfileWindow } from './window.js';

export type DriftTestName = 'ks' | 'ks-binned' | 'chi-square';

export interface FeatureDrift {
  kind: FeatureKind;
  psi: number;
  jensenShannon: number;
  test: {
    name: DriftTestName;
    statistic: number;
    pValue: number;
    /** Degrees of freedom (chi-square only). */
    df?: number;
    /** p-value after the correction for the number of features tested. */
    adjustedPValue: number;
  };
  /** adjustedPValue < alpha. */
  drift: boolean;
  missingRate: { reference: number; current: number };
  count: { reference: number; current: number };
}

export interface DriftReport {
  alpha: number;
  /** Features with a test p-value, the m of the Bonferroni correction. */
  tested: number;
  features: Record<string, FeatureDrift>;
  /** Names of the features flagged as drifted. */
  drifted: string[];
}

export interface DriftOptions {
  /** Family-wise significance level (default 0.05). */
  alpha?: number;
  /** Features to compare (default: every feature of the profile). */
  features?: readonly string[];
  /**
   * Replaces a feature's test result (e.g. an exact two-sample KS when both samples are at
   * hand offline); the correction is applied after.
   */
  tests?: Readonly<Record<string, DriftTestInput>>;
}

export interface DriftTestInput {
  name: DriftTestName;
  statistic: number;
  pValue: number;
  df?: number;
}

export function compareToProfile(profile: ReferenceProfile, window: ProfileWindow, options: DriftOptions = {}): DriftReport {
  const alpha = options.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  const names = options.features ?? Object.keys(profile.features);
  const partial = names.map((name) => {
    const reference = profile.features[name];
    const current = window.features[name];
    if (reference === undefined) throw new Error(`compareToProfile: the profile has no feature "${name}"`);
    if (current === undefined) throw new Error(`compareToProfile: the window has no feature "${name}"`);
    const binned: DriftTestInput =
      reference.kind === 'numeric'
        ? { name: 'ks-binned' as const, ...ksTestBinned(reference.counts, current.counts) }
        : { name: 'chi-square' as const, ...chiSquareTest(reference.counts, current.counts) };
    const test = options.tests?.[name] ?? binned;
    const currentCount = current.counts.reduce((a, b) => a + b, 0);
    const bothPresent = reference.count > 0 && currentCount > 0;
    return {
      name,
      drift: {
        kind: reference.kind,
        psi: bothPresent ? psi(reference.counts, current.counts) : NaN,
        jensenShannon: bothPresent ? jensenShannon(reference.counts, current.counts) : NaN,
        test: { name: test.name, statistic: test.statistic, pValue: test.pValue, ...(test.df === undefined ? {} : { df: test.df }) },
        missingRate: {
          reference: missingRate(reference.missing, reference.count + reference.missing),
          // Missing where it was served: no value, or a default in its place.
          current: missingRate(current.missing + current.defaulted, currentCount + current.missing),
        },
        count: { reference: reference.count, current: currentCount },
      },
    };
  });
  const adjusted = bonferroni(partial.map((p) => p.drift.test.pValue));
  const features = byName<FeatureDrift>();
  const drifted: string[] = [];
  partial.forEach(({ name, drift }, i) => {
    const adjustedPValue = adjusted[i] as number;
    const flagged = adjustedPValue < alpha;
    features[name] = { ...drift, test: { ...drift.test, adjustedPValue }, drift: flagged };
    if (flagged) drifted.push(name);
  });
  return { alpha, tested: adjusted.filter((p) => !Number.isNaN(p)).length, features, drifted };
}

/**
 * Two-sample KS of a current sample against a numeric profile's quantile summary (its k
 * evenly spaced order statistics stand for the reference). Exact when the reference had at
 * most k values; otherwise D is within about 1/(k - 1) of the D against the full reference.
 * The p-value uses the reference's real size (profile.count).
 */
export function ksTestAgainstProfile(feature: NumericFeatureProfile, sample: readonly number[]): KsResult {
  const result = ksTest(feature.quantiles, sample);
  if (feature.quantiles.length === feature.count || Number.isNaN(result.statistic)) return result;
  return { ...result, pValue: ksPValue(result.statistic, feature.count, result.m), n: feature.count };
}
