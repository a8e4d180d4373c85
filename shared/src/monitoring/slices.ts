/**
 * Quality per slice (segment: a country, a merchant category, a model variant...) with a
 * bounded number of slices: the first `maxSlices` distinct slices seen are kept, every later
 * one is counted in the `other` slice, so memory and metric-label cardinality stay bounded.
 * The buckets of a sliding window share the slices kept (`SliceNames`): a slice is named or
 * `other` in all of them, decided once, and not bucket by bucket (a slice kept in one hour and
 * `other` in the next would show only part of its predictions under its name).
 * A value longer than `MAX_SLICE_LENGTH` is counted in `other` too, taking no place: as a
 * metric label value it would make every scrape as large.
 * The fairness view compares false-positive and false-negative rates across slices.
 */
import { addToConfusion, emptyConfusion, mergeConfusion, type ConfusionCounts } from './quality.js';
import { checkThreshold } from './quality-window.js';
import { byName } from './profile.js';

export const OTHER_SLICE = '__other__';
/** The slice of a prediction whose request lacks the field. */
export const MISSING_SLICE = '__missing__';
/** The longest value kept as a slice of its own (UTF-16 units), as long as a request id. */
export const MAX_SLICE_LENGTH = 256;

/** The slices kept by name (at most `maxSlices`, the first seen), shared by the SliceQualities of one window. */
export type SliceNames = Set<string>;

export class SliceQuality {
  readonly slices = new Map<string, ConfusionCounts>();

  /** `names`: the slices kept, shared with the other buckets of a window (its own when not given). */
  constructor(
    readonly threshold: number,
    readonly maxSlices = 20,
    readonly names: SliceNames = new Set(),
  ) {
    checkThreshold(threshold);
    if (!Number.isInteger(maxSlices) || maxSlices < 1) throw new RangeError(`maxSlices must be a positive integer, got ${maxSlices}`);
  }

  /**
   * The slice a segment is counted under: itself if kept or while there is room, `other` beyond
   * the bound or longer than `MAX_SLICE_LENGTH`. `__missing__` is no value: it takes no place
   * under the bound and is never folded.
   */
  sliceOf(segment: string): string {
    if (segment === OTHER_SLICE || segment === MISSING_SLICE || this.names.has(segment)) return segment;
    if (this.names.size >= this.maxSlices || segment.length > MAX_SLICE_LENGTH) return OTHER_SLICE;
    this.names.add(segment);
    return segment;
  }

  add(segment: string, score: number, label: 0 | 1): void {
    const slice = this.sliceOf(segment);
    let counts = this.slices.get(slice);
    if (counts === undefined) {
      counts = emptyConfusion();
      this.slices.set(slice, counts);
    }
    addToConfusion(counts, score, label, this.threshold);
  }

  /** A new SliceQuality with both (on their shared names, if they share them): slices beyond the bound are folded into `other`. */
  merge(other: SliceQuality): SliceQuality {
    const out = new SliceQuality(this.threshold, this.maxSlices, this.names === other.names ? this.names : new Set());
    for (const source of [this, other]) {
      for (const [segment, counts] of source.slices) {
        const slice = out.sliceOf(segment);
        out.slices.set(slice, mergeConfusion(out.slices.get(slice) ?? emptyConfusion(), counts));
      }
    }
    return out;
  }

  counts(): Record<string, ConfusionCounts> {
    return Object.fromEntries([...this.slices].map(([k, v]) => [k, { ...v }]));
  }
}

export interface RateDisparity {
  /** Slices where the rate is defined and counted (`minCount` negatives for FPR, positives for FNR). */
  slices: Record<string, number>;
  min: { slice: string; rate: number } | null;
  max: { slice: string; rate: number } | null;
  /** max - min. */
  difference: number;
  /** max / min: Infinity when min is 0 and max is not, NaN when both are 0 or fewer than two slices. */
  ratio: number;
}

export interface FairnessView {
  falsePositiveRate: RateDisparity;
  falseNegativeRate: RateDisparity;
}

/**
 * Disparity of false-positive and false-negative rates across slices: the false-positive rate
 * of the slices with at least `minCount` negatives (fp + tn), the false-negative rate of those
 * with at least `minCount` positives (tp + fn). Each rate is a share of those labels only: a
 * slice of 30 labels with one positive has a false-negative rate of 0 or 1, which counting all
 * its labels let set the disparity alone. The catch-alls `__other__` (the values beyond the
 * bound) and `__missing__` (no value) are no group and are left out.
 */
export function rateDisparity(slices: Readonly<Record<string, ConfusionCounts>>, minCount = 1): FairnessView {
  // Without a prototype: a slice is any request value, `__proto__` too.
  const fpr = byName<number>();
  const fnr = byName<number>();
  for (const [slice, c] of Object.entries(slices)) {
    if (slice === OTHER_SLICE || slice === MISSING_SLICE) continue;
    const negatives = c.fp + c.tn;
    const positives = c.tp + c.fn;
    if (negatives > 0 && negatives >= minCount) fpr[slice] = c.fp / negatives;
    if (positives > 0 && positives >= minCount) fnr[slice] = c.fn / positives;
  }
  return { falsePositiveRate: disparity(fpr), falseNegativeRate: disparity(fnr) };
}

function disparity(rates: Record<string, number>): RateDisparity {
  const entries = Object.entries(rates).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
  if (entries.length < 2) {
    const only = entries[0];
    const point = only ? { slice: only[0], rate: only[1] } : null;
    return { slices: rates, min: point, max: point, difference: only ? 0 : NaN, ratio: NaN };
  }
  const [minSlice, min] = entries[0] as [string, number];
  const [maxSlice, max] = entries[entries.length - 1] as [string, number];
  return {
    slices: rates,
    min: { slice: minSlice, rate: min },
    max: { slice: maxSlice, rate: max },
    difference: max - min,
    ratio: min > 0 ? max / min : max > 0 ? Infinity : NaN,
  };
}
