/**
 * Drift statistics between a reference and a current distribution. Pure functions over
 * counts (histograms on the same bins) or samples.
 *
 * - PSI: sum_i (a_i - e_i) ln(a_i / e_i) over bin proportions, a zero proportion replaced
 *   by `epsilon` (1e-4, as Evidently) so empty bins stay finite; >= 0 term by term.
 * - Jensen-Shannon divergence, base 2: in [0, 1], symmetric, 0 iff the distributions match.
 * - Two-sample Kolmogorov-Smirnov: D = sup |F_a - F_b|, p-value from the asymptotic
 *   Kolmogorov distribution Q(sqrt(n m / (n + m)) D) (as R's ks.test with exact = FALSE).
 *   From histograms, D is taken at the bin edges only: a lower bound of the sample D.
 * - Chi-square test of homogeneity on the 2 x K table (reference counts, current counts),
 *   as Alibi Detect's categorical drift, after Cochran's rule: the categories whose expected
 *   count in the smaller sample is below 5 are pooled into one (merged with the smallest other
 *   category if still below 5); df = (columns left) - 1, no test (p = 1) under 2 columns.
 * - Bonferroni: p * m capped at 1, across the m features tested together.
 */
import { chiSquareSurvival, kolmogorovSurvival } from './special.js';

export const PSI_EPSILON = 1e-4;

export interface TestResult {
  statistic: number;
  pValue: number;
}

export interface KsResult extends TestResult {
  /** Sizes of the two samples. */
  n: number;
  m: number;
}

export interface ChiSquareResult extends TestResult {
  df: number;
}

/** Counts (or weights) to proportions; NaN everywhere when the total is zero. */
export function proportions(counts: readonly number[]): number[] {
  const total = sum(counts);
  return counts.map((c) => (total > 0 ? c / total : NaN));
}

/** Population stability index of `actual` against `expected` (counts on the same bins). */
export function psi(expected: readonly number[], actual: readonly number[], epsilon = PSI_EPSILON): number {
  sameLength('psi', expected, actual);
  const e = proportions(expected);
  const a = proportions(actual);
  let total = 0;
  for (let i = 0; i < e.length; i++) {
    // Only an empty bin is replaced: clamping every proportion below epsilon erased the
    // change between two rare bins (3 and 9 in 100,000 gave 3.6e-9 instead of 6.6e-5).
    const ei = e[i] === 0 ? epsilon : (e[i] as number);
    const ai = a[i] === 0 ? epsilon : (a[i] as number);
    total += (ai - ei) * Math.log(ai / ei);
  }
  return total;
}

/** Jensen-Shannon divergence in bits between two histograms on the same bins: in [0, 1]. */
export function jensenShannon(p: readonly number[], q: readonly number[]): number {
  sameLength('jensenShannon', p, q);
  const pp = proportions(p);
  const qq = proportions(q);
  let total = 0;
  for (let i = 0; i < pp.length; i++) {
    const pi = pp[i] as number;
    const qi = qq[i] as number;
    const mi = (pi + qi) / 2;
    if (pi > 0) total += 0.5 * pi * Math.log2(pi / mi);
    if (qi > 0) total += 0.5 * qi * Math.log2(qi / mi);
  }
  // Rounding can leave -1e-17 or 1 + 1e-16.
  return Number.isNaN(total) ? NaN : Math.min(1, Math.max(0, total));
}

/** The first value of a sample that is not a finite number, as a RangeError naming it. */
function finiteSample(fn: string, which: string, sample: readonly number[]): void {
  for (let i = 0; i < sample.length; i++) {
    if (!Number.isFinite(sample[i]))
      throw new RangeError(`${fn}: sample ${which} holds ${String(sample[i])} at index ${i} (finite numbers only)`);
  }
}

/**
 * Two-sample Kolmogorov-Smirnov test on samples (asymptotic p-value). Samples of finite numbers
 * only: NaN sorts nowhere and equals nothing (the walk over the samples would never end), so a
 * sample holding NaN or an infinity is refused with a RangeError.
 */
export function ksTest(a: readonly number[], b: readonly number[]): KsResult {
  finiteSample('ksTest', 'a', a);
  finiteSample('ksTest', 'b', b);
  const x = [...a].sort((u, v) => u - v);
  const y = [...b].sort((u, v) => u - v);
  const n = x.length;
  const m = y.length;
  if (n === 0 || m === 0) return { statistic: NaN, pValue: NaN, n, m };
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    // Step past every copy of the smaller value in both samples, then compare the CDFs.
    const v = Math.min(x[i] as number, y[j] as number);
    while (i < n && x[i] === v) i++;
    while (j < m && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / n - j / m));
  }
  return { statistic: d, pValue: ksPValue(d, n, m), n, m };
}

/**
 * Two-sample KS from two histograms on the same bins: D is the largest CDF gap at the bin
 * edges (never above the D of the underlying samples), p-value as for samples.
 */
export function ksTestBinned(a: readonly number[], b: readonly number[]): KsResult {
  sameLength('ksTestBinned', a, b);
  const n = sum(a);
  const m = sum(b);
  if (n === 0 || m === 0) return { statistic: NaN, pValue: NaN, n, m };
  let ca = 0;
  let cb = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    ca += a[i] as number;
    cb += b[i] as number;
    d = Math.max(d, Math.abs(ca / n - cb / m));
  }
  return { statistic: d, pValue: ksPValue(d, n, m), n, m };
}

/** Asymptotic two-sided p-value of the two-sample KS statistic `d` for sample sizes n and m. */
export function ksPValue(d: number, n: number, m: number): number {
  return kolmogorovSurvival(Math.sqrt((n * m) / (n + m)) * d);
}

/**
 * Expected count under which a category of the chi-square test is pooled (Cochran's rule):
 * the chi-square law of the statistic holds only when every expected count is about 5 or more.
 */
export const CHI_SQUARE_MIN_EXPECTED = 5;

/**
 * Chi-square test of homogeneity of two count vectors on the same categories (no continuity
 * correction). A large reference against a live window of a hundred rows leaves most rare
 * categories with an expected count far below 1 in the window, where one row seen gives a
 * huge statistic: on a stable stream the test then flagged drift many times more often than
 * its level. So the sparse categories are pooled first (`poolSparseColumns`); with fewer than
 * two columns left there is nothing to compare: statistic 0, df 0, p = 1.
 */
export function chiSquareTest(reference: readonly number[], current: readonly number[]): ChiSquareResult {
  sameLength('chiSquareTest', reference, current);
  const n = sum(reference);
  const m = sum(current);
  const total = n + m;
  if (n === 0 || m === 0) return { statistic: NaN, df: 0, pValue: NaN };
  const columns = poolSparseColumns(reference, current, Math.min(n, m) / total);
  if (columns.length < 2) return { statistic: 0, df: 0, pValue: 1 };
  let statistic = 0;
  for (const [ref, cur] of columns) {
    const expectedRef = ((ref + cur) * n) / total;
    const expectedCur = ((ref + cur) * m) / total;
    statistic += (ref - expectedRef) ** 2 / expectedRef + (cur - expectedCur) ** 2 / expectedCur;
  }
  const df = columns.length - 1;
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}

/**
 * The (reference, current) columns of the table after Cochran's rule: the categories whose
 * expected count in the smaller sample (column total x `smallerShare`) is below
 * CHI_SQUARE_MIN_EXPECTED go into one pooled column; a pooled column still below it is added
 * to the smallest other column. Categories empty in both samples are left out.
 */
function poolSparseColumns(reference: readonly number[], current: readonly number[], smallerShare: number): [number, number][] {
  const columns: [number, number][] = [];
  let pooledRef = 0;
  let pooledCur = 0;
  for (let i = 0; i < reference.length; i++) {
    const ref = reference[i] as number;
    const cur = current[i] as number;
    if (ref + cur === 0) continue;
    if ((ref + cur) * smallerShare < CHI_SQUARE_MIN_EXPECTED) {
      pooledRef += ref;
      pooledCur += cur;
    } else {
      columns.push([ref, cur]);
    }
  }
  if (pooledRef + pooledCur === 0) return columns;
  if ((pooledRef + pooledCur) * smallerShare >= CHI_SQUARE_MIN_EXPECTED || columns.length === 0) {
    columns.push([pooledRef, pooledCur]);
    return columns;
  }
  let smallest = 0;
  for (let j = 1; j < columns.length; j++) {
    const [ref, cur] = columns[j] as [number, number];
    const [smallestRef, smallestCur] = columns[smallest] as [number, number];
    if (ref + cur < smallestRef + smallestCur) smallest = j;
  }
  const [ref, cur] = columns[smallest] as [number, number];
  columns[smallest] = [ref + pooledRef, cur + pooledCur];
  return columns;
}

/** Bonferroni-adjusted p-values: min(1, p * m) for the m tests (NaN entries stay NaN and are not counted). */
export function bonferroni(pValues: readonly number[]): number[] {
  const m = pValues.filter((p) => !Number.isNaN(p)).length;
  return pValues.map((p) => (Number.isNaN(p) ? NaN : Math.min(1, p * m)));
}

/** Missing values over all values seen; NaN when nothing was seen. */
export function missingRate(missing: number, total: number): number {
  return total > 0 ? missing / total : NaN;
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function sameLength(name: string, a: readonly number[], b: readonly number[]): void {
  if (a.length !== b.length) throw new Error(`${name}: histograms have ${a.length} and ${b.length} bins`);
  if (a.length === 0) throw new Error(`${name}: empty histograms`);
  for (const v of [...a, ...b]) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`${name}: counts must be finite and >= 0, got ${v}`);
  }
}
