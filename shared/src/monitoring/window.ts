/**
 * The live window: counts of the current rows on the reference profile's bins. Fixed
 * memory per feature (one count per bin and a missing count), whatever the number of rows,
 * and mergeable (merging two windows adds their counts, so merge(a, b) equals counting the
 * rows of both). Categories unseen in the reference go to the `other` bucket.
 */
import {
  binIndex,
  byName,
  categoryValue,
  isMissing,
  numericValue,
  type CategoricalFeatureProfile,
  type FeatureProfile,
  type ReferenceProfile,
  type Row,
} from './profile.js';

export interface FeatureWindow {
  /** Counts on the profile's bins (numeric) or categories + other (categorical). */
  counts: number[];
  /** Rows without a value (not counted on the bins). */
  missing: number;
  /**
   * Rows whose value was missing where it was served (absent or stale in the online store)
   * and replaced by its default: counted on the bins as well, as the reference's vectors,
   * imputed the same way, were.
   */
  defaulted: number;
}

export interface ProfileWindow {
  rows: number;
  features: Record<string, FeatureWindow>;
}

/** An empty window on the bins of `profile`. */
export function emptyWindow(profile: ReferenceProfile): ProfileWindow {
  const features = byName<FeatureWindow>();
  for (const [name, feature] of Object.entries(profile.features)) {
    features[name] = { counts: new Array<number>(feature.counts.length).fill(0), missing: 0, defaulted: 0 };
  }
  return { rows: 0, features };
}

/**
 * Counts one row into the window (in place). Values of a numeric feature that are not numbers
 * count as missing. `overrides` (own properties) take the place of the row's values: the
 * same as counting `{ ...row, ...overrides }`, without the copy. `defaulted` names the
 * features whose value is a default standing in for a missing one: each counts once as
 * defaulted when its value was counted on a bin (names not in the profile, repeated, or of
 * a missing value are ignored).
 */
export function observeRow(
  profile: ReferenceProfile,
  window: ProfileWindow,
  row: Row,
  overrides?: Row,
  defaulted?: readonly string[],
): void {
  const plan = planOf(profile);
  const targets = targetsOf(plan, window);
  window.rows++;
  for (let i = 0; i < plan.length; i++) {
    const feature = plan[i]!;
    const target = targets[i]!;
    const value = overrides !== undefined && Object.hasOwn(overrides, feature.name) ? overrides[feature.name] : row[feature.name];
    if (feature.edges !== null) {
      // Numeric: binIndex over the edges as a typed array.
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        target.missing++;
        continue;
      }
      const edges = feature.edges;
      let lo = 0;
      let hi = edges.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (edges[mid]! <= value) lo = mid + 1;
        else hi = mid;
      }
      target.counts[lo]!++;
    } else {
      const bin = binOf(feature.profile, value);
      if (bin === undefined) target.missing++;
      else target.counts[bin]!++;
    }
  }
  if (defaulted !== undefined && defaulted.length > 0) countDefaulted(plan, targets, row, overrides, defaulted);
}

/** The `defaulted` part of observeRow: each named feature of the plan once, if its value was binned. */
function countDefaulted(
  plan: FeaturePlan[],
  targets: FeatureWindow[],
  row: Row,
  overrides: Row | undefined,
  defaulted: readonly string[],
): void {
  const names = namesOf(plan);
  const call = ++names.calls;
  for (const name of defaulted) {
    const i = names.index.get(name);
    if (i === undefined || names.countedIn[i] === call) continue;
    names.countedIn[i] = call;
    const feature = plan[i]!;
    const value = overrides !== undefined && Object.hasOwn(overrides, name) ? overrides[name] : row[name];
    const binned =
      feature.edges !== null ? typeof value === 'number' && Number.isFinite(value) : binOf(feature.profile, value) !== undefined;
    if (binned) targets[i]!.defaulted++;
  }
}

/**
 * A plan's feature indexes by name, made once per plan, and for each feature the last row it
 * was counted as defaulted in (a name listed twice in a row counts once, without a set per row).
 */
interface PlanNames {
  index: Map<string, number>;
  /** Per feature, the call of `countDefaulted` that last counted it. */
  countedIn: Float64Array;
  calls: number;
}
const planNames = new WeakMap<FeaturePlan[], PlanNames>();

function namesOf(plan: FeaturePlan[]): PlanNames {
  let names = planNames.get(plan);
  if (names === undefined) {
    names = { index: new Map(plan.map(({ name }, i) => [name, i])), countedIn: new Float64Array(plan.length), calls: 0 };
    planNames.set(plan, names);
  }
  return names;
}

/** A profile's features in order, each numeric one with its bin edges as a typed array. */
interface FeaturePlan {
  name: string;
  profile: FeatureProfile;
  /** The bin edges of a numeric feature; null for a categorical one. */
  edges: Float64Array | null;
}

// Made once per profile (profiles are immutable once built).
const plans = new WeakMap<ReferenceProfile, FeaturePlan[]>();

function planOf(profile: ReferenceProfile): FeaturePlan[] {
  let plan = plans.get(profile);
  if (plan === undefined) {
    plan = Object.entries(profile.features).map(([name, feature]) => ({
      name,
      profile: feature,
      edges: feature.kind === 'numeric' ? Float64Array.from(feature.edges) : null,
    }));
    plans.set(profile, plan);
  }
  return plan;
}

// Each window's per-feature counts in the order of its profile's plan, found on its first row
// (a window's feature entries are made with it and never replaced: emptyWindow, mergeWindows).
const windowTargets = new WeakMap<ProfileWindow, { plan: FeaturePlan[]; targets: FeatureWindow[] }>();

function targetsOf(plan: FeaturePlan[], window: ProfileWindow): FeatureWindow[] {
  const found = windowTargets.get(window);
  if (found !== undefined && found.plan === plan) return found.targets;
  const targets = plan.map(({ name }) => {
    const target = window.features[name];
    if (target === undefined) throw new Error(`window has no feature "${name}": it was built for another profile`);
    return target;
  });
  windowTargets.set(window, { plan, targets });
  return targets;
}

/** The bin a value falls in for a feature profile, or undefined when the value is missing. */
export function binOf(feature: FeatureProfile, value: unknown): number | undefined {
  if (feature.kind === 'numeric') {
    const x = numericValue(value);
    return x === undefined ? undefined : binIndex(feature.edges, x);
  }
  if (isMissing(value)) return undefined;
  return categoryBin(feature, categoryValue(value) as string);
}

// A small cache of category -> bin per profile: profiles are immutable once built.
const categoryIndexes = new WeakMap<CategoricalFeatureProfile, Map<string, number>>();

function categoryBin(feature: CategoricalFeatureProfile, category: string): number {
  let index = categoryIndexes.get(feature);
  if (index === undefined) {
    index = new Map(feature.categories.map((c, i) => [c, i]));
    categoryIndexes.set(feature, index);
  }
  return index.get(category) ?? feature.categories.length;
}

/** A new window with the counts of both (windows on the same profile). */
export function mergeWindows(a: ProfileWindow, b: ProfileWindow): ProfileWindow {
  const features = byName<FeatureWindow>();
  for (const [name, fa] of Object.entries(a.features)) {
    const fb = b.features[name];
    if (fb === undefined || fb.counts.length !== fa.counts.length) {
      throw new Error(`mergeWindows: feature "${name}" has different bins in the two windows`);
    }
    features[name] = {
      counts: fa.counts.map((c, i) => c + (fb.counts[i] as number)),
      missing: fa.missing + fb.missing,
      defaulted: fa.defaulted + fb.defaulted,
    };
  }
  if (Object.keys(b.features).length !== Object.keys(a.features).length) {
    throw new Error('mergeWindows: the windows have different features');
  }
  return { rows: a.rows + b.rows, features };
}
