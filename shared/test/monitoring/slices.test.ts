import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_SLICE_LENGTH, MISSING_SLICE, OTHER_SLICE, rateDisparity, SliceQuality } from '../../src/monitoring/slices.js';

describe('SliceQuality', () => {
  it('keeps at most maxSlices named slices and counts the rest in other', () => {
    const slices = new SliceQuality(0.5, 2);
    slices.add('FR', 0.9, 1);
    slices.add('DE', 0.1, 0);
    slices.add('IT', 0.8, 0);
    slices.add('ES', 0.2, 1);
    slices.add('FR', 0.7, 0);
    expect(slices.counts()).toEqual({
      FR: { tp: 1, fp: 1, tn: 0, fn: 0 },
      DE: { tp: 0, fp: 0, tn: 1, fn: 0 },
      [OTHER_SLICE]: { tp: 0, fp: 1, tn: 0, fn: 1 },
    });
  });

  it('counts a value longer than a metric label value may be in other, where it takes no place', () => {
    const slices = new SliceQuality(0.5, 2);
    const longest = 'L'.repeat(MAX_SLICE_LENGTH);
    slices.add('W'.repeat(900_000), 0.9, 1);
    slices.add('W'.repeat(MAX_SLICE_LENGTH + 1), 0.1, 1);
    slices.add(longest, 0.9, 0);
    slices.add('FR', 0.1, 0);
    expect(MAX_SLICE_LENGTH).toBe(256);
    expect(slices.counts()).toEqual({
      [OTHER_SLICE]: { tp: 1, fp: 0, tn: 0, fn: 1 },
      [longest]: { tp: 0, fp: 1, tn: 0, fn: 0 },
      FR: { tp: 0, fp: 0, tn: 1, fn: 0 },
    });
  });

  it('merging keeps the bound and loses no prediction', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom<0 | 1>(0, 1)),
          {
            maxLength: 60,
          },
        ),
        fc.nat(),
        (events, cut) => {
          const split = cut % (events.length + 1);
          const left = new SliceQuality(0.5, 3);
          const right = new SliceQuality(0.5, 3);
          events.forEach(([slice, s, y], i) => (i < split ? left : right).add(slice, s, y));
          const merged = left.merge(right);
          expect(merged.slices.size).toBeLessThanOrEqual(4);
          const total = Object.values(merged.counts()).reduce((acc, c) => acc + c.tp + c.fp + c.tn + c.fn, 0);
          expect(total).toBe(events.length);
        },
      ),
    );
  });
});

describe('rateDisparity', () => {
  it('compares a slice named __proto__ as any other', () => {
    const slices = new SliceQuality(0.5);
    for (const [slice, score, label] of [
      ['__proto__', 0.9, 0],
      ['__proto__', 0.1, 0],
      ['FR', 0.1, 0],
      ['FR', 0.1, 0],
      ['FR', 0.1, 0],
      ['FR', 0.9, 0],
    ] as const) {
      slices.add(slice, score, label);
    }
    const view = rateDisparity(slices.counts());
    // __proto__: fpr 1/2; FR: fpr 1/4.
    expect(Object.entries(view.falsePositiveRate.slices)).toEqual([
      ['__proto__', 0.5],
      ['FR', 0.25],
    ]);
    expect(view.falsePositiveRate.max).toEqual({ slice: '__proto__', rate: 0.5 });
    expect(view.falsePositiveRate.min).toEqual({ slice: 'FR', rate: 0.25 });
    expect(view.falsePositiveRate.ratio).toBe(2);
  });

  it('compares false-positive and false-negative rates across slices (hand example)', () => {
    // A: fpr 2/10 = 0.2, fnr 1/5 = 0.2; B: fpr 1/10 = 0.1, fnr 3/5 = 0.6; C: too small (minCount 5).
    const view = rateDisparity(
      {
        A: { tp: 4, fn: 1, fp: 2, tn: 8 },
        B: { tp: 2, fn: 3, fp: 1, tn: 9 },
        C: { tp: 0, fn: 1, fp: 1, tn: 0 },
      },
      5,
    );
    expect(view.falsePositiveRate.min).toEqual({ slice: 'B', rate: 0.1 });
    expect(view.falsePositiveRate.max).toEqual({ slice: 'A', rate: 0.2 });
    expect(view.falsePositiveRate.ratio).toBeCloseTo(2, 14);
    expect(view.falsePositiveRate.difference).toBeCloseTo(0.1, 14);
    expect(view.falseNegativeRate.ratio).toBeCloseTo(3, 14);
    expect(view.falseNegativeRate.difference).toBeCloseTo(0.4, 14);
    expect(Object.keys(view.falseNegativeRate.slices)).toEqual(['A', 'B']);
  });

  it('counts minCount in positives for the false-negative rate and in negatives for the false-positive rate', () => {
    // B has 30 labels but 1 positive and 29 negatives: with minCount 30 it takes part in neither
    // rate (counted on all its labels, its FNR of 1 against A's 0.2 set the disparity alone).
    const view = rateDisparity({ A: { tp: 40, fn: 10, fp: 95, tn: 855 }, B: { tp: 0, fn: 1, fp: 1, tn: 28 } }, 30);
    expect(Object.keys(view.falseNegativeRate.slices)).toEqual(['A']);
    expect(view.falseNegativeRate).toMatchObject({ min: { slice: 'A', rate: 0.2 }, difference: 0 });
    expect(view.falseNegativeRate.ratio).toBeNaN();
    expect(Object.keys(view.falsePositiveRate.slices)).toEqual(['A']);
    // C: 30 negatives, 2 positives: its FPR counts, its FNR does not.
    const withC = rateDisparity({ A: { tp: 40, fn: 10, fp: 95, tn: 855 }, C: { tp: 1, fn: 1, fp: 6, tn: 24 } }, 30);
    expect(withC.falsePositiveRate).toMatchObject({ min: { slice: 'A', rate: 0.1 }, max: { slice: 'C', rate: 0.2 } });
    expect(withC.falsePositiveRate.difference).toBeCloseTo(0.1, 14);
    expect(Object.keys(withC.falseNegativeRate.slices)).toEqual(['A']);
  });

  it('leaves the catch-alls __other__ and __missing__ out: they are no group to compare', () => {
    const view = rateDisparity({
      A: { tp: 4, fn: 1, fp: 2, tn: 8 },
      B: { tp: 2, fn: 3, fp: 1, tn: 9 },
      [OTHER_SLICE]: { tp: 0, fn: 5, fp: 10, tn: 0 },
      [MISSING_SLICE]: { tp: 5, fn: 0, fp: 0, tn: 10 },
    });
    expect(Object.keys(view.falsePositiveRate.slices)).toEqual(['A', 'B']);
    expect(view.falsePositiveRate).toMatchObject({ min: { slice: 'B', rate: 0.1 }, max: { slice: 'A', rate: 0.2 } });
    expect(Object.keys(view.falseNegativeRate.slices)).toEqual(['A', 'B']);
    expect(view.falseNegativeRate).toMatchObject({ min: { slice: 'A', rate: 0.2 }, max: { slice: 'B', rate: 0.6 } });
  });

  it('reports an infinite ratio when one slice has a zero rate, NaN with fewer than two slices', () => {
    const view = rateDisparity({ A: { tp: 1, fn: 0, fp: 0, tn: 5 }, B: { tp: 1, fn: 1, fp: 1, tn: 1 } });
    expect(view.falsePositiveRate.ratio).toBe(Infinity);
    expect(view.falseNegativeRate.difference).toBeCloseTo(0.5, 14);
    expect(rateDisparity({ A: { tp: 1, fn: 1, fp: 1, tn: 1 } }).falsePositiveRate.ratio).toBeNaN();
  });
});
