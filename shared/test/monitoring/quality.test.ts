import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { logLoss, rocAuc } from '../../src/model/metrics.js';
import {
  CalibrationBins,
  classificationMetrics,
  confusionAt,
  expectedCalibrationError,
  weightedRocAuc,
} from '../../src/monitoring/quality.js';
import { aucScoreBin, QualityAccumulator, ScoreHistogram } from '../../src/monitoring/quality-window.js';

const labelled = fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom<0 | 1>(0, 1)), { maxLength: 120 });

describe('confusion counts and metrics', () => {
  it('counts at the threshold (score >= threshold is positive) on a hand example', () => {
    // 0.9/1 tp, 0.6/0 fp, 0.5/1 tp (at the threshold), 0.4/1 fn, 0.2/0 tn
    const c = confusionAt([0.9, 0.6, 0.4, 0.2, 0.5], [1, 0, 1, 0, 1], 0.5);
    expect(c).toEqual({ tp: 2, fp: 1, tn: 1, fn: 1 });
    const m = classificationMetrics(c);
    expect(m.accuracy).toBeCloseTo(3 / 5, 15);
    expect(m.precision).toBeCloseTo(2 / 3, 15);
    expect(m.recall).toBeCloseTo(2 / 3, 15);
    expect(m.f1).toBeCloseTo(2 / 3, 15);
    expect(m.fpr).toBeCloseTo(1 / 2, 15);
    expect(m.fnr).toBeCloseTo(1 / 3, 15);
  });

  it('gives NaN where a denominator is zero, and F1 = 0 with no true positive', () => {
    const m = classificationMetrics({ tp: 0, fp: 0, tn: 3, fn: 2 });
    expect(m.precision).toBeNaN();
    expect(m.recall).toBe(0);
    expect(m.f1).toBe(0);
    expect(m.fpr).toBe(0);
    expect(classificationMetrics({ tp: 0, fp: 0, tn: 0, fn: 0 }).accuracy).toBeNaN();
  });

  it('rejects labels outside [0, 1] and non-finite scores', () => {
    expect(() => confusionAt([0.5], [2], 0.5)).toThrow(/labels\[0\]/);
    expect(() => confusionAt([NaN], [1], 0.5)).toThrow(/scores\[0\]/);
  });
});

describe('weightedRocAuc', () => {
  it('is the Mann-Whitney AUC on labels, ties counting one half (hand-ranked example)', () => {
    // Positives 0.35, 0.8, 0.4; negatives 0.1, 0.4, 0.7.
    // 0.35 beats 0.1 (1); 0.8 beats all three (3); 0.4 beats 0.1 and ties 0.4 (1.5) -> 5.5 / 9
    const scores = [0.1, 0.35, 0.4, 0.4, 0.7, 0.8];
    const labels = [0, 1, 0, 1, 0, 1];
    expect(weightedRocAuc(scores, labels)).toBeCloseTo(5.5 / 9, 15);
    expect(rocAuc(scores, labels)).toBeCloseTo(5.5 / 9, 15);
  });

  it('equals the rank-based rocAuc on any labelled sample', () => {
    fc.assert(
      fc.property(labelled, (pairs) => {
        const scores = pairs.map(([s]) => s);
        const labels = pairs.map(([, y]) => y);
        const a = weightedRocAuc(scores, labels);
        const b = rocAuc(scores, labels);
        if (Number.isNaN(b)) expect(a).toBeNaN();
        else expect(a).toBeCloseTo(b, 12);
      }),
    );
  });
});

describe('expected calibration error', () => {
  it('matches the hand computation with two bins', () => {
    // bin [0, 0.5): scores 0.1, 0.2 (mean 0.15), labels 0, 1 (mean 0.5): |0.5 - 0.15| = 0.35, weight 1/2
    // bin [0.5, 1]: scores 0.7, 0.9 (mean 0.8), labels 1, 1 (mean 1): |1 - 0.8| = 0.2, weight 1/2
    // ECE = 0.175 + 0.1 = 0.275
    expect(expectedCalibrationError([0.1, 0.2, 0.7, 0.9], [0, 1, 1, 1], 2)).toBeCloseTo(0.275, 15);
  });

  it('puts a score of 1 in the last bin and is 0 for perfectly calibrated bins', () => {
    expect(expectedCalibrationError([1, 1, 0, 0], [1, 1, 0, 0], 10)).toBe(0);
    expect(expectedCalibrationError([0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0], 10)).toBe(0);
    expect(new CalibrationBins(4).ece()).toBeNaN();
  });
});

describe('ScoreHistogram AUC', () => {
  it('counts pairs in the same bin as ties and bounds the error (hand example)', () => {
    // The hand-ranked sample above on 2 bins: [0, 0.5) holds positives 0.35, 0.4 and negatives 0.1, 0.4;
    // [0.5, 1] holds positive 0.8 and negative 0.7.
    // AUC = (2 * (0 + 2/2) + 1 * (2 + 1/2)) / 9 = 4.5 / 9 = 0.5; bound = (2 * 2 + 1 * 1) / (2 * 9) = 5/18
    const h = new ScoreHistogram(2);
    [0.1, 0.35, 0.4, 0.4, 0.7, 0.8].forEach((s, i) => h.add(s, [0, 1, 0, 1, 0, 1][i]!));
    const auc = h.rocAuc();
    expect(auc.value).toBeCloseTo(0.5, 15);
    expect(auc.errorBound).toBeCloseTo(5 / 18, 15);
    expect(Math.abs(5.5 / 9 - auc.value)).toBeLessThanOrEqual(auc.errorBound);
  });

  it('bins finer near 0 and 1: half the score, half its logit clamped to +-10', () => {
    // numpy: t = (s + clip((log(s) - log1p(-s) + 10) / 20, 0, 1)) / 2; floor(t * 100), at most 99.
    const bins = [0, 1e-4, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1].map((s) => aucScoreBin(s, 100));
    expect(bins).toEqual([0, 1, 7, 14, 24, 50, 75, 85, 92, 99]);
    expect(() => aucScoreBin(1.5, 100)).toThrow(RangeError);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 400 }),
        (a, b, n) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(aucScoreBin(lo, n)).toBeLessThanOrEqual(aucScoreBin(hi, n));
          expect(aucScoreBin(hi, n)).toBeLessThan(n);
        },
      ),
    );
  });

  it('keeps the AUC of scores crowded near 0 (a fraud model) close to the exact one', () => {
    // Negatives 1e-5 5e-5 2e-4 6e-4 1.5e-3 3e-3 5e-3; positives 4e-4 2.5e-3 7e-3 9e-3 0.05.
    // Exact AUC (scipy.stats.rankdata, Mann-Whitney): 29/35 = 0.8285714285714286.
    // Equal-width bins put all but 0.05 in the first bin: 0.6, bound 0.4. On the bins above
    // (numpy, as in the previous test) two pairs share a bin: 29/35, bound 1/35.
    const h = new ScoreHistogram(100);
    [1e-5, 5e-5, 2e-4, 6e-4, 1.5e-3, 3e-3, 5e-3].forEach((s) => h.add(s, 0));
    [4e-4, 2.5e-3, 7e-3, 9e-3, 0.05].forEach((s) => h.add(s, 1));
    const auc = h.rocAuc();
    expect(auc.value).toBeCloseTo(29 / 35, 14);
    expect(auc.errorBound).toBeCloseTo(1 / 35, 14);
  });

  it('is within its error bound of the exact AUC', () => {
    fc.assert(
      fc.property(labelled, fc.integer({ min: 1, max: 200 }), (pairs, bins) => {
        const h = new ScoreHistogram(bins);
        pairs.forEach(([s, y]) => h.add(s, y));
        const exact = rocAuc(
          pairs.map(([s]) => s),
          pairs.map(([, y]) => y),
        );
        const { value, errorBound } = h.rocAuc();
        if (Number.isNaN(exact)) expect(value).toBeNaN();
        else expect(Math.abs(exact - value)).toBeLessThanOrEqual(errorBound + 1e-12);
      }),
    );
  });
});

describe('QualityAccumulator', () => {
  it('gives the sample metrics exactly (confusion, log loss, ECE) and the AUC within its bound', () => {
    const scores = [0.9, 0.6, 0.4, 0.2, 0.5, 0.05, 0.95];
    const labels = [1, 0, 1, 0, 1, 0, 1] as const;
    const q = new QualityAccumulator({ threshold: 0.5, scoreBins: 100, calibrationBins: 5 });
    scores.forEach((s, i) => q.add(s, labels[i]!));
    const summary = q.summary();
    expect(summary.confusion).toEqual(confusionAt(scores, [...labels], 0.5));
    expect(summary.count).toBe(7);
    expect(summary.positives).toBe(4);
    expect(summary.logLoss).toBeCloseTo(logLoss(scores, [...labels]), 14);
    // Losses -ln 0.9, -ln 0.4, -ln 0.6, -ln 0.8, -ln 0.5, -ln 0.95, -ln 0.95: sample deviation / sqrt(7).
    expect(Math.abs(summary.logLossStdError - 0.15250430803174975)).toBeLessThan(1e-12);
    expect(summary.ece).toBeCloseTo(expectedCalibrationError(scores, [...labels], 5), 14);
    // All scores in distinct bins: the binned AUC is exact.
    expect(summary.rocAucErrorBound).toBe(0);
    expect(summary.rocAuc).toBeCloseTo(rocAuc(scores, [...labels]), 14);
  });

  it('log loss clips probabilities of 0 and 1 at 1e-15', () => {
    const q = new QualityAccumulator({ threshold: 0.5 });
    q.add(0, 1);
    expect(q.summary().logLoss).toBeCloseTo(-Math.log(1e-15), 10);
  });

  it('merging equals accumulating everything in one', () => {
    fc.assert(
      fc.property(labelled, fc.nat(), (pairs, cut) => {
        const split = cut % (pairs.length + 1);
        const options = { threshold: 0.3, scoreBins: 20, calibrationBins: 4 };
        const all = new QualityAccumulator(options);
        const left = new QualityAccumulator(options);
        const right = new QualityAccumulator(options);
        pairs.forEach(([s, y], i) => {
          all.add(s, y);
          (i < split ? left : right).add(s, y);
        });
        const merged = left.merge(right).summary();
        const expected = all.summary();
        expect(merged.confusion).toEqual(expected.confusion);
        for (const key of ['rocAuc', 'logLoss', 'logLossStdError', 'ece', 'accuracy', 'f1'] as const) {
          if (Number.isNaN(expected[key])) expect(merged[key]).toBeNaN();
          else expect(merged[key]).toBeCloseTo(expected[key], 10);
        }
      }),
    );
  });

  it('rejects labels other than 0/1, scores outside [0, 1] and bad thresholds', () => {
    const q = new QualityAccumulator({ threshold: 0.5 });
    expect(() => q.add(0.5, 2 as 0)).toThrow(/label/);
    expect(() => q.add(1.5, 1)).toThrow(/probability/);
    expect(() => new QualityAccumulator({ threshold: 2 })).toThrow(/threshold/);
  });
});
