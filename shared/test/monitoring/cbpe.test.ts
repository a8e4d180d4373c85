import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CbpeAccumulator, estimatePerformance, histogramCalibrator } from '../../src/monitoring/cbpe.js';
import { confusionAt, classificationMetrics } from '../../src/monitoring/quality.js';

describe('estimatePerformance (CBPE)', () => {
  it('computes the expected confusion matrix and metrics on a hand example', () => {
    // scores 0.9, 0.8 (predicted positive at 0.5), 0.3, 0.1 (predicted negative):
    // E[tp] = 0.9 + 0.8 = 1.7, E[fp] = 0.1 + 0.2 = 0.3, E[fn] = 0.3 + 0.1 = 0.4, E[tn] = 0.7 + 0.9 = 1.6
    const estimate = estimatePerformance([0.9, 0.8, 0.3, 0.1], 0.5);
    expect(estimate.estimated).toBe(true);
    expect(estimate.confusion.tp).toBeCloseTo(1.7, 14);
    expect(estimate.confusion.fp).toBeCloseTo(0.3, 14);
    expect(estimate.confusion.fn).toBeCloseTo(0.4, 14);
    expect(estimate.confusion.tn).toBeCloseTo(1.6, 14);
    expect(estimate.accuracy).toBeCloseTo(3.3 / 4, 14);
    expect(estimate.precision).toBeCloseTo(1.7 / 2, 14);
    expect(estimate.recall).toBeCloseTo(1.7 / 2.1, 14);
    expect(estimate.f1).toBeCloseTo(3.4 / 4.1, 14);
    // AUC: sorted 0.1, 0.3, 0.8, 0.9 with w+ = p, w- = 1 - p; area = sum p_i (negatives below + (1 - p_i) / 2)
    // = 0.1 (0 + 0.45) + 0.3 (0.9 + 0.35) + 0.8 (1.6 + 0.1) + 0.9 (1.8 + 0.05) = 3.445
    // over W+ W- = 2.1 * 1.9 = 3.99 -> 0.8634085213032581 (the brute-force double sum over all pairs agrees)
    expect(estimate.rocAuc).toBeCloseTo(3.445 / 3.99, 14);
    expect(estimate.rocAucErrorBound).toBe(0);
  });

  it('equals the realised metrics on average when labels are drawn from the calibrated scores', () => {
    // For fixed scores, E[tp] over labels y_i ~ Bernoulli(p_i) is exactly sum of p over predicted positives:
    // averaging the realised confusion over every one of the 2^4 label vectors, weighted by its probability, gives it.
    const scores = [0.9, 0.8, 0.3, 0.1];
    const expected = { tp: 0, fp: 0, tn: 0, fn: 0 };
    for (let mask = 0; mask < 16; mask++) {
      const labels = scores.map((_, i) => (mask >> i) & 1);
      const probability = scores.reduce((acc, p, i) => acc * (labels[i] === 1 ? p : 1 - p), 1);
      const c = confusionAt(scores, labels, 0.5);
      expected.tp += probability * c.tp;
      expected.fp += probability * c.fp;
      expected.tn += probability * c.tn;
      expected.fn += probability * c.fn;
    }
    const estimate = estimatePerformance(scores, 0.5);
    for (const key of ['tp', 'fp', 'tn', 'fn'] as const) expect(estimate.confusion[key]).toBeCloseTo(expected[key], 14);
    expect(estimate.accuracy).toBeCloseTo(classificationMetrics(expected).accuracy, 14);
  });
});

describe('estimatePerformance with calibrated probabilities', () => {
  it('decides on the score and weighs by the calibrated probability', () => {
    // Calibration says every prediction is a coin flip: E[tp] = E[fp] = 0.5 + 0.5, E[fn] = E[tn] = 1; AUC 1/2.
    const estimate = estimatePerformance([0.9, 0.8, 0.3, 0.1], 0.5, [0.5, 0.5, 0.5, 0.5]);
    expect(estimate.confusion).toEqual({ tp: 1, fp: 1, tn: 1, fn: 1 });
    expect(estimate.accuracy).toBe(0.5);
    expect(estimate.rocAuc).toBeCloseTo(0.5, 14);
    const streamed = new CbpeAccumulator(0.5);
    [0.9, 0.8, 0.3, 0.1].forEach((s) => streamed.add(s, 0.5));
    expect(streamed.estimate().confusion).toEqual({ tp: 1, fp: 1, tn: 1, fn: 1 });
    expect(() => estimatePerformance([0.9], 0.5, [0.5, 0.5])).toThrow(/1 scores but 2 probabilities/);
  });
});

describe('CbpeAccumulator', () => {
  it('matches the sample estimate (exact confusion, AUC within its bound) and merges', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 80 }), fc.nat(), (scores, cut) => {
        const split = cut % (scores.length + 1);
        const all = new CbpeAccumulator(0.5, 50);
        const left = new CbpeAccumulator(0.5, 50);
        const right = new CbpeAccumulator(0.5, 50);
        scores.forEach((p, i) => {
          all.add(p);
          (i < split ? left : right).add(p);
        });
        const sample = estimatePerformance(scores, 0.5);
        const streamed = all.estimate();
        for (const key of ['tp', 'fp', 'tn', 'fn'] as const) expect(streamed.confusion[key]).toBeCloseTo(sample.confusion[key], 10);
        if (Number.isNaN(sample.rocAuc)) expect(streamed.rocAuc).toBeNaN();
        else expect(Math.abs(streamed.rocAuc - sample.rocAuc)).toBeLessThanOrEqual(streamed.rocAucErrorBound + 1e-12);
        const merged = left.merge(right).estimate();
        expect(merged.count).toBe(scores.length);
        expect(merged.accuracy).toBeCloseTo(streamed.accuracy, 10);
      }),
    );
  });
});

describe('histogramCalibrator', () => {
  it('maps a score to the positive rate of its reference bin, keeping sparse bins as they are', () => {
    // Bin [0.8, 0.9) has 4 reference scores, 1 positive -> 0.25. Bin [0.1, 0.2) has only 1 score (< minCount 2).
    const calibrate = histogramCalibrator([0.81, 0.82, 0.85, 0.89, 0.15], [1, 0, 0, 0, 1], 10, 2);
    expect(calibrate(0.84)).toBe(0.25);
    expect(calibrate(0.12)).toBe(0.12);
  });
});
