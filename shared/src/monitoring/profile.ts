/**
 * The reference profile of a model: for every feature (and the score) a fixed histogram of
 * the training data, stored in the model manifest's `profile` field (plain JSON). The live
 * window (window.ts) is counted on exactly these bins, so drift compares like with like.
 *
 * - numeric: bin edges at the reference quantiles (deciles by default, collapsed where
 *   values tie; one bin per value when there are no more distinct values than bins), plus
 *   the feature's own edges (the score's: the decision threshold and upper quantiles, see
 *   scoreFeature), counts per bin, and a bounded quantile summary (evenly spaced order
 *   statistics) from which a Kolmogorov-Smirnov test against an offline sample is run;
 * - categorical: counts of the most frequent categories (bounded cardinality), the rest in
 *   one `other` bucket.
 * Missing values (absent, null, NaN, empty string) are counted apart.
 */

export type FeatureKind = 'numeric' | 'categorical';

export interface ProfiledFeature {
  name: string;
  kind: FeatureKind;
  /** Numeric only: values made bin edges besides the quantile edges, where distinct from them (a decision threshold). */
  edges?: readonly number[];
  /** Numeric only: quantiles, in (0, 1), whose reference values are made bin edges too, where distinct (a tail the deciles leave in one bin). */
  quantiles?: readonly number[];
}

/**
 * The score's upper quantiles made edges: a fraud model scores most rows near 0, so every
 * decile edge is below the decision region and scores from there to 1 share one bin.
 */
const SCORE_TAIL_QUANTILES = [0.99, 0.999] as const;

/**
 * The score as a profiled feature: its decile edges, and edges at the model's threshold and
 * at SCORE_TAIL_QUANTILES, so a move across the threshold or within the top of the
 * distribution changes the bins' counts.
 */
export function scoreFeature(name: string, threshold: number): ProfiledFeature {
  return { name, kind: 'numeric', edges: [threshold], quantiles: SCORE_TAIL_QUANTILES };
}

export interface NumericFeatureProfile {
  kind: 'numeric';
  /** Interior bin edges, strictly increasing: bin 0 is (-inf, edges[0]), bin i is [edges[i-1], edges[i]), the last is [edges[k-1], +inf). */
  edges: number[];
  /** Reference count per bin, length edges.length + 1. */
  counts: number[];
  /** Non-missing reference values. */
  count: number;
  missing: number;
  /** Evenly spaced order statistics (min first, max last): the whole sorted sample when count <= the bound. */
  quantiles: number[];
}

export interface CategoricalFeatureProfile {
  kind: 'categorical';
  /** The most frequent reference categories, most frequent first. */
  categories: string[];
  /** Reference count per category, and the `other` bucket last: length categories.length + 1. */
  counts: number[];
  count: number;
  missing: number;
}

export type FeatureProfile = NumericFeatureProfile | CategoricalFeatureProfile;

export interface ReferenceProfile {
  version: 1;
  rows: number;
  features: Record<string, FeatureProfile>;
}

export interface ProfileOptions {
  /** Quantile bins for numeric features (default 10). */
  bins?: number;
  /** Categories kept per categorical feature before the `other` bucket (default 50). */
  maxCategories?: number;
  /** Order statistics kept per numeric feature for KS (default 201). */
  maxQuantiles?: number;
}

export const PROFILE_DEFAULTS = { bins: 10, maxCategories: 50, maxQuantiles: 201 } as const;

/** The name of the bucket that gathers categories beyond the bound (and categories unseen in the reference). */
export const OTHER_CATEGORY = '__other__';

export type Row = Readonly<Record<string, unknown>>;

/** True for values that count as missing: absent, null, NaN, non-finite numbers and empty strings. */
export function isMissing(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (typeof value === 'number' && !Number.isFinite(value));
}

/** A numeric value or undefined when the value is missing or not a number. */
export function numericValue(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The category a value stands for (its string form), or undefined when missing. */
export function categoryValue(value: unknown): string | undefined {
  if (isMissing(value)) return undefined;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Numeric when every present value is a finite number (and at least one is present), categorical otherwise. */
export function inferFeatureKind(rows: Iterable<Row>, name: string): FeatureKind {
  let seen = false;
  for (const row of rows) {
    const value = row[name];
    if (isMissing(value)) continue;
    if (typeof value !== 'number') return 'categorical';
    seen = true;
  }
  return seen ? 'numeric' : 'categorical';
}

/** An empty object keyed by feature names, without a prototype: any name is an own key only. */
export function byName<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Builds the reference profile of `features` from reference rows. */
export function buildProfile(rows: readonly Row[], features: readonly ProfiledFeature[], options: ProfileOptions = {}): ReferenceProfile {
  return buildProfileOfColumns(rows.length, (name) => rows.map((row) => row[name]), features, options);
}

/**
 * Builds the reference profile of `features` from the values of each, one column at a time
 * (`column(name)`: a value per reference row): no object per row is made.
 */
export function buildProfileOfColumns(
  rows: number,
  column: (name: string) => readonly unknown[],
  features: readonly ProfiledFeature[],
  options: ProfileOptions = {},
): ReferenceProfile {
  // Keyed by any name a data set holds (`toString`, `__proto__`): no prototype to collide with.
  const profile: ReferenceProfile = { version: 1, rows, features: byName() };
  for (const spec of features) {
    if (Object.hasOwn(profile.features, spec.name)) throw new Error(`buildProfile: feature "${spec.name}" is listed twice`);
    profile.features[spec.name] =
      spec.kind === 'numeric' ? numericProfile(column(spec.name), options, spec) : categoricalProfile(column(spec.name), options);
  }
  return profile;
}

export function numericProfile(
  values: readonly unknown[],
  options: ProfileOptions = {},
  extra: Pick<ProfiledFeature, 'edges' | 'quantiles'> = {},
): NumericFeatureProfile {
  const bins = positiveInteger('bins', options.bins ?? PROFILE_DEFAULTS.bins);
  const maxQuantiles = positiveInteger('maxQuantiles', options.maxQuantiles ?? PROFILE_DEFAULTS.maxQuantiles);
  if (maxQuantiles < 2) throw new RangeError('maxQuantiles must be at least 2');
  const badEdge = extra.edges?.find((x) => !Number.isFinite(x));
  if (badEdge !== undefined) throw new RangeError(`edges must be finite numbers, got ${badEdge}`);
  const badQuantile = extra.quantiles?.find((q) => !(q > 0 && q < 1));
  if (badQuantile !== undefined) throw new RangeError(`quantiles must be in (0, 1), got ${badQuantile}`);
  const present: number[] = [];
  let missing = 0;
  for (const value of values) {
    const x = numericValue(value);
    if (x === undefined) missing++;
    else present.push(x);
  }
  present.sort((a, b) => a - b);
  const edges: number[] = [];
  const distinct = distinctSorted(present, bins);
  if (distinct !== undefined) {
    // Few distinct values (a flag, a count): one bin per value, so ties do not merge them.
    edges.push(...distinct.slice(1));
  }
  for (let j = 1; j < bins && present.length > 0 && distinct === undefined; j++) {
    const edge = quantileSorted(present, j / bins);
    if (edges.length === 0 || edge > (edges[edges.length - 1] as number)) edges.push(edge);
  }
  const added = [...(extra.edges ?? []), ...(extra.quantiles ?? []).map((q) => quantileSorted(present, q))];
  if (added.length > 0) edges.splice(0, edges.length, ...mergeEdges(edges, added));
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const x of present) counts[binIndex(edges, x)]!++;
  return { kind: 'numeric', edges, counts, count: present.length, missing, quantiles: orderStatistics(present, maxQuantiles) };
}

export function categoricalProfile(values: readonly unknown[], options: ProfileOptions = {}): CategoricalFeatureProfile {
  const maxCategories = positiveInteger('maxCategories', options.maxCategories ?? PROFILE_DEFAULTS.maxCategories);
  const tally = new Map<string, number>();
  let missing = 0;
  let count = 0;
  for (const value of values) {
    const category = categoryValue(value);
    if (category === undefined) {
      missing++;
      continue;
    }
    count++;
    tally.set(category, (tally.get(category) ?? 0) + 1);
  }
  // Most frequent first; ties by name so the profile does not depend on row order.
  const ranked = [...tally].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = ranked.filter(([name]) => name !== OTHER_CATEGORY).slice(0, maxCategories);
  const categories = kept.map(([name]) => name);
  const counts = kept.map(([, n]) => n);
  counts.push(count - counts.reduce((a, b) => a + b, 0));
  return { kind: 'categorical', categories, counts, count, missing };
}

/** The bin of `x` for interior edges `edges`: the number of edges <= x (binary search). */
export function binIndex(edges: readonly number[], x: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((edges[mid] as number) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The q-quantile of a sorted sample with linear interpolation between order statistics (type 7, numpy's default). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (h - lo) * (b - a);
}

/** k evenly spaced order statistics of a sorted sample (the whole sample when it has at most k values). */
export function orderStatistics(sorted: readonly number[], k: number): number[] {
  if (sorted.length <= k) return [...sorted];
  const out: number[] = [];
  for (let i = 0; i < k; i++) out.push(sorted[Math.round((i * (sorted.length - 1)) / (k - 1))] as number);
  return out;
}

/** The union of strictly increasing `edges` and `added`, strictly increasing (NaN, from an empty sample's quantile, dropped). */
function mergeEdges(edges: readonly number[], added: readonly number[]): number[] {
  const merged = [...edges, ...added.filter((x) => !Number.isNaN(x))].sort((a, b) => a - b);
  return merged.filter((x, i) => i === 0 || x > (merged[i - 1] as number));
}

/** The distinct values of a sorted sample when there are at most `limit` of them, else undefined. */
function distinctSorted(sorted: readonly number[], limit: number): number[] | undefined {
  const out: number[] = [];
  for (const x of sorted) {
    if (out.length === 0 || x !== out[out.length - 1]) {
      if (out.length === limit) return undefined;
      out.push(x);
    }
  }
  return out;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
