import { describe, expect, it } from 'vitest';
import {
  predictGradientBoosting,
  predictGradientBoostingBatch,
  predictGradientBoostingLogit,
  trainGradientBoosting,
  type GradientBoostingModel,
} from './gradient-boosting.js';
import { predictLogisticRegression, sigmoid, trainLogisticRegression } from './logistic-regression.js';
import { logLoss, rocAuc } from './metrics.js';
import { createRandom, type Random } from './random.js';

/** XOR of the signs of two features, 10% of labels flipped, plus noise features. */
function xorData(r: Random, n: number): { rows: number[][]; labels: number[] } {
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = [2 * r.next() - 1, 2 * r.next() - 1, r.normal(), r.normal(), r.normal()];
    const y = (row[0] as number) * (row[1] as number) > 0 ? 1 : 0;
    rows.push(row);
    labels.push(r.next() < 0.1 ? 1 - y : y);
  }
  return { rows, labels };
}

const names = (f: number): string[] => Array.from({ length: f }, (_, j) => `f${j}`);

describe('trainGradientBoosting', () => {
  it('gives the hand-computed Newton leaf values for one split into two leaves', () => {
    // Left of x <= 1: labels 0, 0, 1; right: 1, 1, 1. Base rate 4/6.
    const rows = [[1], [1], [1], [2], [2], [2]];
    const labels = [0, 0, 1, 1, 1, 1];
    const l2 = 1;
    const { model } = trainGradientBoosting(rows, labels, {
      featureNames: ['x'],
      trees: 1,
      learningRate: 1,
      maxDepth: 1,
      minSamplesLeaf: 1,
      l2,
    });
    expect(model.baseScore).toBe(Math.fround(Math.log(4 / 2)));
    const tree = model.trees[0]!;
    expect(tree.feature).toEqual([0, -1, -1]);
    expect(tree.threshold[0]).toBe(1);
    expect(tree.left[0]).toBe(1);
    expect(tree.right[0]).toBe(2);
    // Gradient p - y and hessian p(1 - p) at p = sigmoid(base score), summed per leaf.
    const p = sigmoid(model.baseScore);
    const leftValue = -(3 * p - 1) / (3 * p * (1 - p) + l2);
    const rightValue = -(3 * p - 3) / (3 * p * (1 - p) + l2);
    expect(tree.value[1]).toBe(Math.fround(leftValue));
    expect(tree.value[2]).toBe(Math.fround(rightValue));
    // With p = 2/3 exactly: G = +-1, H = 2/3, so the values are -+1 / (2/3 + 1) = -+0.6.
    expect(tree.value[1]).toBeCloseTo(-0.6, 6);
    expect(tree.value[2]).toBeCloseTo(0.6, 6);
    expect(predictGradientBoosting(model, [1])).toBeCloseTo(sigmoid(Math.log(2) - 0.6), 6);
    expect(predictGradientBoosting(model, [2])).toBeCloseTo(sigmoid(Math.log(2) + 0.6), 6);
  });

  it('scales leaf values by the learning rate and shrinks them with l2', () => {
    const rows = [[1], [1], [1], [2], [2], [2]];
    const labels = [0, 0, 1, 1, 1, 1];
    const options = { featureNames: ['x'], trees: 1, maxDepth: 1, minSamplesLeaf: 1 };
    const a = trainGradientBoosting(rows, labels, { ...options, learningRate: 1, l2: 1 }).model.trees[0]!;
    const b = trainGradientBoosting(rows, labels, { ...options, learningRate: 0.1, l2: 1 }).model.trees[0]!;
    const c = trainGradientBoosting(rows, labels, { ...options, learningRate: 1, l2: 10 }).model.trees[0]!;
    expect(b.value[1]).toBeCloseTo((a.value[1] as number) * 0.1, 7);
    expect(Math.abs(c.value[1] as number)).toBeLessThan(Math.abs(a.value[1] as number) / 5);
  });

  it('learns where missing values go: NaN follows the rows it resembles', () => {
    const x = [1, 1, NaN, NaN, 2, 2];
    const options = { featureNames: ['x'], trees: 1, learningRate: 1, maxDepth: 1, minSamplesLeaf: 1 };
    const right = trainGradientBoosting(
      x.map((v) => [v]),
      [0, 0, 1, 1, 1, 1],
      options,
    ).model.trees[0]!;
    expect(right.threshold[0]).toBe(1);
    expect(right.missingLeft[0]).toBe(false);
    const left = trainGradientBoosting(
      x.map((v) => [v]),
      [1, 1, 1, 1, 0, 0],
      options,
    ).model.trees[0]!;
    expect(left.threshold[0]).toBe(1);
    expect(left.missingLeft[0]).toBe(true);
  });

  it('splits on missingness itself when only NaN separates the classes', () => {
    const r = createRandom(4);
    const rows = Array.from({ length: 400 }, (_, i) => [i % 2 === 0 ? NaN : r.normal()]);
    const labels = rows.map((_, i) => (i % 2 === 0 ? 1 : 0));
    const { model } = trainGradientBoosting(rows, labels, { featureNames: ['x'], trees: 20, learningRate: 0.5 });
    expect(predictGradientBoosting(model, [NaN])).toBeGreaterThan(0.95);
    expect(predictGradientBoosting(model, [0.3])).toBeLessThan(0.05);
  });

  it('is deterministic for a seed, with row and feature subsampling', () => {
    const { rows, labels } = xorData(createRandom(1), 2000);
    const options = { featureNames: names(5), trees: 15, subsample: 0.7, featureFraction: 0.6, seed: 42 };
    const a = trainGradientBoosting(rows, labels, options);
    const b = trainGradientBoosting(rows, labels, options);
    expect(b).toEqual(a);
    const c = trainGradientBoosting(rows, labels, { ...options, seed: 43 });
    expect(c.model).not.toEqual(a.model);
  });

  it('learns an XOR interaction that logistic regression cannot', () => {
    const train = xorData(createRandom(2), 4000);
    const valid = xorData(createRandom(3), 2000);
    const { model } = trainGradientBoosting(train.rows, train.labels, { featureNames: names(5), trees: 60 });
    const gbt = valid.rows.map((row) => predictGradientBoosting(model, row));
    const lr = trainLogisticRegression(train.rows, train.labels, { featureNames: names(5) });
    const linear = valid.rows.map((row) => predictLogisticRegression(lr, row));
    const gbtAuc = rocAuc(gbt, valid.labels);
    const lrAuc = rocAuc(linear, valid.labels);
    // With 10% of labels flipped, the best possible AUC is about 0.9.
    expect(gbtAuc).toBeGreaterThan(0.85);
    expect(lrAuc).toBeLessThan(0.6);
    expect(logLoss(gbt, valid.labels)).toBeLessThan(logLoss(linear, valid.labels) - 0.2);
  });

  it('respects the leaf and depth limits and the minimum rows per leaf', () => {
    const { rows, labels } = xorData(createRandom(5), 3000);
    const { model } = trainGradientBoosting(rows, labels, {
      featureNames: names(5),
      trees: 5,
      maxLeaves: 7,
      maxDepth: 3,
      minSamplesLeaf: 50,
    });
    const counts = new Map<string, number>();
    for (const [t, tree] of model.trees.entries()) {
      const leaves = tree.feature.filter((j) => j < 0).length;
      expect(leaves).toBeLessThanOrEqual(7);
      const depth = (k: number): number => (tree.feature[k]! < 0 ? 0 : 1 + Math.max(depth(tree.left[k]!), depth(tree.right[k]!)));
      expect(depth(0)).toBeLessThanOrEqual(3);
      for (const row of rows) {
        let k = 0;
        while (tree.feature[k]! >= 0) k = Math.fround(row[tree.feature[k]!]!) <= tree.threshold[k]! ? tree.left[k]! : tree.right[k]!;
        counts.set(`${t}:${k}`, (counts.get(`${t}:${k}`) ?? 0) + 1);
      }
    }
    expect(Math.min(...counts.values())).toBeGreaterThanOrEqual(50);
  });

  it('stops early on the validation set and keeps the best rounds', () => {
    const train = xorData(createRandom(6), 1500);
    const valid = xorData(createRandom(7), 1500);
    const result = trainGradientBoosting(train.rows, train.labels, {
      featureNames: names(5),
      trees: 300,
      learningRate: 0.5,
      minSamplesLeaf: 2,
      validation: valid,
      earlyStoppingRounds: 10,
    });
    const losses = result.validationLogLoss;
    const kept = result.model.trees.length;
    expect(result.rounds).toBeLessThan(300);
    expect(losses).toHaveLength(result.rounds);
    expect(result.rounds - kept).toBe(10);
    expect(losses[kept - 1]).toBe(Math.min(...losses));
    // The loss recorded during training is the loss of the model's own predictions.
    const scores = valid.rows.map((row) => predictGradientBoosting(result.model, row));
    expect(logLoss(scores, valid.labels)).toBeCloseTo(losses[kept - 1]!, 10);
  });

  it('predicts the same one row at a time, in a batch, and on float32 or float64 input', () => {
    const { rows, labels } = xorData(createRandom(8), 1000);
    const { model } = trainGradientBoosting(rows, labels, { featureNames: names(5), trees: 10 });
    const data = Float32Array.from(rows.flat());
    const batch = predictGradientBoostingBatch(model, data, rows.length);
    rows.forEach((row, i) => {
      expect(predictGradientBoosting(model, row)).toBe(batch[i]);
      expect(predictGradientBoosting(model, data.subarray(i * 5, i * 5 + 5))).toBe(batch[i]);
    });
  });

  it('rejects bad input and settings with messages that name them', () => {
    const rows = [[1], [2]];
    const ok = { featureNames: ['x'] };
    expect(() => trainGradientBoosting(rows, [1, 1], ok)).toThrow(/both classes \(2 positives, 0 negatives\)/);
    expect(() => trainGradientBoosting(rows, [0, 2], ok)).toThrow(/labels\[1\] is 2/);
    expect(() => trainGradientBoosting([[1], [2, 3]], [0, 1], ok)).toThrow(/rows\[1\] has 2 values, featureNames has 1/);
    expect(() => trainGradientBoosting([[1], ['a' as unknown as number]], [0, 1], ok)).toThrow(/rows\[1\]\[0\] is a, not a number/);
    expect(() => trainGradientBoosting(rows, [0, 1], { ...ok, learningRate: 0 })).toThrow(/learningRate must be a number in \(0, 1\]/);
    expect(() => trainGradientBoosting(rows, [0, 1], { ...ok, maxBins: 300 })).toThrow(/maxBins must be an integer in \[2, 255\]/);
    expect(() => trainGradientBoosting(rows, [0, 1], { ...ok, trees: 1.5 })).toThrow(/trees must be an integer/);
    expect(() => trainGradientBoosting(rows, [0, 1], { featureNames: ['x', 'x'] })).toThrow(/"x" appears twice/);
    expect(() => trainGradientBoosting(rows, [0, 1], { ...ok, validation: { rows: [], labels: [] } })).toThrow(/validation.rows is empty/);
    const model: GradientBoostingModel = trainGradientBoosting(rows, [0, 1], { ...ok, trees: 1, minSamplesLeaf: 1 }).model;
    expect(() => predictGradientBoostingLogit(model, [1, 2])).toThrow(/row has 2 values, the model expects 1/);
  });
});
