/**
 * `monitor compare`: the monitor's statistics run offline on two samples (a reference and
 * a current NDJSON file). The reference is profiled exactly as a model's reference profile
 * is, the current sample is counted on the same bins as the live window is, and drift,
 * quality and estimated quality come from the same functions in @tributary/shared. With
 * both samples at hand, numeric features get the exact two-sample KS test instead of the
 * binned one the live monitor uses.
 */
import {
  buildProfile,
  byName,
  classificationMetrics,
  compareToProfile,
  confusionAt,
  emptyWindow,
  estimatePerformance,
  expectedCalibrationError,
  histogramCalibrator,
  inferFeatureKind,
  ksTest,
  logLoss,
  MISSING_SLICE,
  missingRate,
  numericValue,
  observeRow,
  rateDisparity,
  rocAuc,
  scoreFeature,
  SliceQuality,
  type ClassificationMetrics,
  type ConfusionCounts,
  type DriftTestInput,
  type EstimatedPerformance,
  type FairnessView,
  type FeatureDrift,
  type ProfiledFeature,
  type Row,
} from '@tributary/shared';
import { CompareInputError, type Sample } from './compare-input.js';

export interface CompareOptions {
  /** Features to compare (default: every feature found in the reference). */
  features?: string[];
  scoreField: string;
  labelField: string;
  sliceField?: string;
  threshold: number;
  /** Family-wise significance level of the drift flags (default 0.05). */
  alpha: number;
  /** Quantile bins of numeric features (default 10). */
  bins: number;
  /** Categories kept per categorical feature (default 50). */
  maxCategories: number;
  /** Slices kept before `other` (default 20). */
  maxSlices: number;
  /**
   * Negatives a slice needs for its false-positive rate, positives for its false-negative rate,
   * to count in the disparity (default 30, as the live monitor: a rate of a handful is noise).
   */
  minSliceCount?: number;
}

export const COMPARE_DEFAULTS = {
  scoreField: 'score',
  labelField: 'label',
  threshold: 0.5,
  alpha: 0.05,
  bins: 10,
  maxCategories: 50,
  maxSlices: 20,
  minSliceCount: 30,
};

export interface SampleQuality extends ClassificationMetrics {
  count: number;
  positives: number;
  confusion: ConfusionCounts;
  rocAuc: number;
  logLoss: number;
  ece: number;
}

export interface CompareReport {
  /** Rows compared, and records left out by the model/version/variant filter. */
  reference: { file: string; rows: number; excluded: number };
  current: { file: string; rows: number; excluded: number };
  alpha: number;
  correction: 'bonferroni';
  threshold: number;
  features: Array<{ name: string } & FeatureDrift>;
  drifted: string[];
  /** Features tested, the family of the Bonferroni correction. */
  tested: number;
  /** Features whose test could not run: no value in the reference or in the current sample. */
  untested: string[];
  /** Drift of the score (tested on its own, not part of the feature family); null without scores. */
  score: FeatureDrift | null;
  quality: { reference: SampleQuality | null; current: SampleQuality | null };
  /** CBPE on the current scores; `calibrated` when the scores were first calibrated on the labelled reference. */
  estimated: (EstimatedPerformance & { calibrated: boolean }) | null;
  /**
   * False-positive/false-negative rate disparity across slices of the labelled current rows
   * (slices with `minCount` negatives, resp. positives).
   */
  fairness: (FairnessView & { field: string; minCount: number }) | null;
}

export function compareSamples(reference: Sample, current: Sample, options: CompareOptions): CompareReport {
  const names = options.features ?? reference.featureNames;
  const specs: ProfiledFeature[] = names.map((name) => {
    if (!reference.rows.some((row) => row[name] !== undefined)) {
      throw new CompareInputError(`${reference.file}: feature "${name}" is in no reference record`);
    }
    return { name, kind: inferFeatureKind(reference.rows, name) };
  });
  const scoreName = options.scoreField;
  const hasScores = reference.scores.some((s) => s !== undefined) && current.scores.some((s) => s !== undefined);
  // The score's bins as in a model's profile: edges at the threshold and the upper quantiles besides the deciles.
  const profiled = hasScores && !names.includes(scoreName) ? [...specs, scoreFeature(scoreName, options.threshold)] : specs;
  const profile = buildProfile(reference.rows, profiled, { bins: options.bins, maxCategories: options.maxCategories });
  const window = emptyWindow(profile);
  current.rows.forEach((row, i) => observeRow(profile, window, row, undefined, current.defaulted[i]));
  // The reference's defaults served in place of missing values, counted by the same rule, for its missing rate
  // (a second pass over the reference, only when its records name defaults).
  const referenceWindow = reference.defaulted.some((names) => names !== undefined && names.length > 0) ? emptyWindow(profile) : null;
  if (referenceWindow) reference.rows.forEach((row, i) => observeRow(profile, referenceWindow, row, undefined, reference.defaulted[i]));
  const withReferenceDefaults = (name: string, drift: FeatureDrift): FeatureDrift => {
    const { missing, count } = profile.features[name]!;
    const defaults = referenceWindow?.features[name]!.defaulted ?? 0;
    return defaults === 0
      ? drift
      : { ...drift, missingRate: { ...drift.missingRate, reference: missingRate(missing + defaults, count + missing) } };
  };

  // Exact KS on the samples for numeric features (and the score).
  const exact = (name: string): DriftTestInput => ({ name: 'ks', ...ksTest(numbers(reference.rows, name), numbers(current.rows, name)) });
  const tests = byName<DriftTestInput>();
  for (const spec of profiled) if (spec.kind === 'numeric') tests[spec.name] = exact(spec.name);

  const drift = compareToProfile(profile, window, { alpha: options.alpha, features: names, tests });
  const scoreDrift = hasScores
    ? withReferenceDefaults(
        scoreName,
        compareToProfile(profile, window, { alpha: options.alpha, features: [scoreName], tests }).features[scoreName]!,
      )
    : undefined;

  const referenceQuality = sampleQuality(reference, options.threshold);
  const currentQuality = sampleQuality(current, options.threshold);
  return {
    reference: { file: reference.file, rows: reference.rows.length, excluded: reference.excluded },
    current: { file: current.file, rows: current.rows.length, excluded: current.excluded },
    alpha: drift.alpha,
    correction: 'bonferroni',
    threshold: options.threshold,
    features: names.map((name) => ({ name, ...withReferenceDefaults(name, drift.features[name]!) })),
    drifted: drift.drifted,
    tested: drift.tested,
    untested: names.filter((name) => Number.isNaN(drift.features[name]!.test.pValue)),
    score: scoreDrift ?? null,
    quality: { reference: referenceQuality, current: currentQuality },
    estimated: estimate(reference, current, options.threshold),
    fairness: fairness(current, options),
  };
}

function numbers(rows: readonly Row[], name: string): number[] {
  const out: number[] = [];
  for (const row of rows) {
    const x = numericValue(row[name]);
    if (x !== undefined) out.push(x);
  }
  return out;
}

function labelled(sample: Sample): { scores: number[]; labels: Array<0 | 1>; slices: Array<string | undefined> } {
  const scores: number[] = [];
  const labels: Array<0 | 1> = [];
  const slices: Array<string | undefined> = [];
  sample.scores.forEach((s, i) => {
    const y = sample.labels[i];
    if (s !== undefined && y !== undefined) {
      scores.push(s);
      labels.push(y);
      slices.push(sample.slices[i]);
    }
  });
  return { scores, labels, slices };
}

/** Exact sample metrics (the streaming accumulators bin the AUC; offline, the ranks are at hand). */
export function sampleQuality(sample: Sample, threshold: number): SampleQuality | null {
  const { scores, labels } = labelled(sample);
  if (scores.length === 0) return null;
  const confusion = confusionAt(scores, labels, threshold);
  return {
    count: scores.length,
    positives: confusion.tp + confusion.fn,
    confusion,
    ...classificationMetrics(confusion),
    rocAuc: rocAuc(scores, labels),
    logLoss: logLoss(scores, labels),
    ece: expectedCalibrationError(scores, labels, 10),
  };
}

function estimate(reference: Sample, current: Sample, threshold: number): CompareReport['estimated'] {
  const scores = current.scores.filter((s): s is number => s !== undefined);
  if (scores.length === 0) return null;
  const ref = labelled(reference);
  const calibrated = ref.scores.length > 0;
  const calibrate = calibrated ? histogramCalibrator(ref.scores, ref.labels, 10, 10) : (p: number) => p;
  // The threshold applies to the model's score; CBPE weighs each prediction by its calibrated probability.
  return { ...estimatePerformance(scores, threshold, scores.map(calibrate)), calibrated };
}

function fairness(current: Sample, options: CompareOptions): CompareReport['fairness'] {
  if (options.sliceField === undefined) return null;
  const { scores, labels, slices } = labelled(current);
  if (scores.length === 0) return null;
  const quality = new SliceQuality(options.threshold, options.maxSlices);
  scores.forEach((s, i) => quality.add(slices[i] ?? MISSING_SLICE, s, labels[i] as 0 | 1));
  const minCount = options.minSliceCount ?? COMPARE_DEFAULTS.minSliceCount;
  return { field: options.sliceField, minCount, ...rateDisparity(quality.counts(), minCount) };
}
