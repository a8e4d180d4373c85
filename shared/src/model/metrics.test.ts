import { describe, it, expect } from 'vitest';
import { logLoss, rocAuc } from './metrics.js';
import { createRandom } from './random.js';

/** O(n^2) reference: fraction of (positive, negative) pairs ordered correctly, ties = 1/2. */
function bruteForceAuc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let k = 0; k < scores.length; k++) {
      if (labels[k] !== 0) continue;
      pairs++;
      const si = scores[i] as number;
      const sk = scores[k] as number;
      if (si > sk) wins += 1;
      else if (si === sk) wins += 0.5;
    }
  }
  return wins / pairs;
}

describe('rocAuc', () => {
  it('matches the brute-force pairwise computation on random data with many ties', () => {
    const r = createRandom(11);
    for (let trial = 0; trial < 50; trial++) {
      const n = 2 + r.int(300);
      // Few distinct score values -> many ties, including ties across classes.
      const levels = 1 + r.int(8);
      const scores = Array.from({ length: n }, () => r.int(levels) / levels);
      const labels = Array.from({ length: n }, () => (r.next() < 0.3 ? 1 : 0));
      if (!labels.includes(0) || !labels.includes(1)) continue;
      expect(rocAuc(scores, labels)).toBeCloseTo(bruteForceAuc(scores, labels), 12);
    }
  });

  it('matches the brute force on continuous scores in typed arrays', () => {
    const r = createRandom(12);
    const n = 500;
    const labels = Float64Array.from({ length: n }, () => (r.next() < 0.05 ? 1 : 0));
    const scores = Float32Array.from(labels, (y) => r.normal() + y);
    expect(rocAuc(scores, labels)).toBeCloseTo(bruteForceAuc([...scores], [...labels]), 12);
  });

  it('gives 1 for perfect ranking, 0 for reversed and 0.5 for all-tied scores', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5], [0, 1, 0])).toBe(0.5);
    expect(rocAuc([-Infinity, 0, Infinity], [0, 1, 1])).toBe(1);
  });

  it('returns NaN when a class is absent', () => {
    expect(rocAuc([0.1, 0.2], [0, 0])).toBeNaN();
    expect(rocAuc([0.1, 0.2], [1, 1])).toBeNaN();
    expect(rocAuc([], [])).toBeNaN();
  });

  it('rejects bad input', () => {
    expect(() => rocAuc([0.1, 0.2], [0])).toThrow(/2 scores but 1 labels/);
    expect(() => rocAuc([0.1, NaN], [0, 1])).toThrow(/scores\[1\] is NaN/);
    expect(() => rocAuc([0.1, 0.2], [0, 2])).toThrow(/labels\[1\] is 2/);
  });
});

describe('logLoss', () => {
  it('is the mean binary cross-entropy', () => {
    const expected = -(Math.log(0.8) + Math.log(1 - 0.3) + Math.log(0.6)) / 3;
    expect(logLoss([0.8, 0.3, 0.6], [1, 0, 1])).toBeCloseTo(expected, 14);
  });

  it('clips probabilities to 1e-15 so certain mistakes stay finite', () => {
    expect(logLoss([0], [1])).toBeCloseTo(-Math.log(1e-15), 10);
    expect(logLoss([1], [0])).toBeCloseTo(-Math.log(1e-15), 1);
    expect(Number.isFinite(logLoss([1, 0], [0, 1]))).toBe(true);
    expect(logLoss([1, 0], [1, 0])).toBeLessThan(1e-14);
  });

  it('rejects bad input', () => {
    expect(() => logLoss([], [])).toThrow(/no scores/);
    expect(() => logLoss([0.5], [1, 0])).toThrow(/1 scores but 2 labels/);
    expect(() => logLoss([1.5], [1])).toThrow(/probabilities must be in \[0, 1\]/);
    expect(() => logLoss([NaN], [1])).toThrow(/scores\[0\] is NaN/);
    expect(() => logLoss([0.5], [0.5])).toThrow(/labels must be 0 or 1/);
  });
});
