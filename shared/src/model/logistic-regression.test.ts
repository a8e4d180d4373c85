import { describe, it, expect } from 'vitest';
import { predictLogisticRegression, sigmoid, trainLogisticRegression } from './logistic-regression.js';
import type { LogisticRegressionModel, LogisticRegressionOptions } from './logistic-regression.js';
import { logLoss, rocAuc } from './metrics.js';
import { createRandom } from './random.js';

const FEATURES = ['amount', 'velocity', 'age_days', 'noise', 'constant'];

interface Dataset {
  rows: number[][];
  labels: number[];
  /** The true probabilities the labels were drawn from. */
  truth: number[];
}

/**
 * Features on very different scales and offsets; the labels come from a known logistic model
 * with a strongly negative bias (a few percent positives, like fraud). 'noise' is irrelevant
 * and 'constant' never changes.
 */
function syntheticDataset(n: number, seed: number): Dataset {
  const r = createRandom(seed);
  const rows: number[][] = [];
  const labels: number[] = [];
  const truth: number[] = [];
  for (let i = 0; i < n; i++) {
    const amount = 100 + 50 * r.normal();
    const velocity = 3 + 2 * r.normal();
    const ageDays = 1000 + 400 * r.normal();
    const noise = r.normal();
    const logit = -6 + 0.04 * (amount - 100) + 0.8 * (velocity - 3) - 0.003 * (ageDays - 1000);
    const p = sigmoid(logit);
    rows.push([amount, velocity, ageDays, noise, 7]);
    truth.push(p);
    labels.push(r.next() < p ? 1 : 0);
  }
  return { rows, labels, truth };
}

const train = syntheticDataset(8000, 1);
const heldOut = syntheticDataset(4000, 2);

function scoresOf(model: LogisticRegressionModel, rows: number[][]): number[] {
  return rows.map((row) => predictLogisticRegression(model, row));
}

describe('trainLogisticRegression', () => {
  it('recovers a model that ranks held-out data almost as well as the true model', () => {
    const positiveRate = train.labels.reduce((a, b) => a + b, 0) / train.labels.length;
    expect(positiveRate).toBeGreaterThan(0.02);
    expect(positiveRate).toBeLessThan(0.08);

    const model = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES, seed: 7 });
    const scores = scoresOf(model, heldOut.rows);
    const auc = rocAuc(scores, heldOut.labels);
    const bestAuc = rocAuc(heldOut.truth, heldOut.labels);
    expect(auc).toBeGreaterThan(0.9);
    expect(auc).toBeGreaterThan(bestAuc - 0.01);

    // Calibrated too: close to the true model's log loss, far below always predicting the base rate.
    const baseRate = logLoss(
      heldOut.labels.map(() => positiveRate),
      heldOut.labels,
    );
    const trueLoss = logLoss(heldOut.truth, heldOut.labels);
    expect(logLoss(scores, heldOut.labels)).toBeLessThan(trueLoss + 0.01);
    expect(logLoss(scores, heldOut.labels)).toBeLessThan(0.6 * baseRate);

    // The coefficients have the true signs; the irrelevant and constant features get ~0.
    const [amount, velocity, ageDays, noise, constant] = model.weights as [number, number, number, number, number];
    expect(amount).toBeGreaterThan(1);
    expect(velocity).toBeGreaterThan(1);
    expect(ageDays).toBeLessThan(-0.5);
    expect(Math.abs(noise)).toBeLessThan(0.3);
    expect(Math.abs(constant)).toBeLessThan(1e-6);
  });

  it('standardizes with the training mean and population std, scale 1 for a constant feature', () => {
    const model = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES, epochs: 1 });
    for (let j = 0; j < 4; j++) {
      const column = train.rows.map((row) => row[j] as number);
      const mean = column.reduce((a, b) => a + b, 0) / column.length;
      const std = Math.sqrt(column.reduce((a, b) => a + (b - mean) ** 2, 0) / column.length);
      expect(model.mean[j]).toBeCloseTo(mean, 9);
      expect(model.scale[j]).toBeCloseTo(std, 9);
    }
    expect(model.mean[4]).toBe(7);
    expect(model.scale[4]).toBe(1);
    // 0.1 summed three times is not exactly 0.3: the constant must still get scale 1.
    const tiny = trainLogisticRegression([[0.1], [0.1], [0.1]], [0, 1, 0], { featureNames: ['x'], epochs: 1 });
    expect(tiny.mean).toEqual([0.1]);
    expect(tiny.scale).toEqual([1]);
    expect(model.featureNames).toEqual(FEATURES);
  });

  it('is deterministic for a seed and depends on it', () => {
    const options: LogisticRegressionOptions = { featureNames: FEATURES, seed: 123, epochs: 5 };
    const a = trainLogisticRegression(train.rows, train.labels, options);
    const b = trainLogisticRegression(train.rows, train.labels, options);
    expect(b).toEqual(a);
    const c = trainLogisticRegression(train.rows, train.labels, { ...options, seed: 124 });
    expect(c.weights).not.toEqual(a.weights);
  });

  it('balanced class weights raise the scores of the rare class', () => {
    const plain = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES });
    const balanced = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES, classWeight: 'balanced' });
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const positiveRate = mean(train.labels);
    // Unweighted logistic regression is calibrated: mean score ~ base rate.
    expect(Math.abs(mean(scoresOf(plain, train.rows)) - positiveRate)).toBeLessThan(0.01);
    // Balanced weights n / (2 n_class) make both classes count equally: at the optimum the
    // class-weighted mean score is 1/2, so the plain mean score moves far above the base rate.
    const n = train.labels.length;
    const positives = train.labels.reduce((a, b) => a + b, 0);
    const classWeight = (y: number): number => n / (2 * (y === 1 ? positives : n - positives));
    const balancedScores = scoresOf(balanced, train.rows);
    const weightedMean = balancedScores.reduce((acc, p, i) => acc + classWeight(train.labels[i] as number) * p, 0) / n;
    expect(Math.abs(weightedMean - 0.5)).toBeLessThan(0.02);
    expect(mean(balancedScores)).toBeGreaterThan(4 * positiveRate);
    expect(rocAuc(scoresOf(balanced, heldOut.rows), heldOut.labels)).toBeGreaterThan(0.9);
  });

  it('L2 regularization shrinks the weights', () => {
    const norm = (m: LogisticRegressionModel): number => Math.hypot(...m.weights);
    const free = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES, l2: 0 });
    const strong = trainLogisticRegression(train.rows, train.labels, { featureNames: FEATURES, l2: 0.1 });
    expect(norm(strong)).toBeLessThan(0.5 * norm(free));
  });

  it('accepts typed-array rows and labels', () => {
    const rows = train.rows.map((row) => Float32Array.from(row));
    const labels = Uint8Array.from(train.labels);
    const model = trainLogisticRegression(rows, labels, { featureNames: FEATURES, epochs: 3 });
    expect(rocAuc(scoresOf(model, heldOut.rows), heldOut.labels)).toBeGreaterThan(0.9);
  });
});

describe('trainLogisticRegression input validation', () => {
  const rows = [
    [1, 2],
    [3, 4],
    [5, 6],
  ];
  const labels = [0, 1, 0];
  const featureNames = ['a', 'b'];

  it.each([
    ['empty data', [], [], { featureNames }, /no training rows/],
    ['more labels than rows', rows, [0, 1, 0, 1], { featureNames }, /3 rows but 4 labels/],
    ['a short row', [[1, 2], [3], [5, 6]], labels, { featureNames }, /rows\[1\] has 1 values, featureNames has 2/],
    [
      'NaN',
      [
        [1, 2],
        [3, NaN],
        [5, 6],
      ],
      labels,
      { featureNames },
      /rows\[1\]\[1\] \(feature "b"\) is NaN/,
    ],
    [
      'Infinity',
      [
        [Infinity, 2],
        [3, 4],
        [5, 6],
      ],
      labels,
      { featureNames },
      /rows\[0\]\[0\] \(feature "a"\) is Infinity/,
    ],
    ['label 2', rows, [0, 2, 0], { featureNames }, /labels\[1\] is 2, labels must be 0 or 1/],
    ['label NaN', rows, [0, NaN, 0], { featureNames }, /labels\[1\] is NaN/],
    ['one class only', rows, [0, 0, 0], { featureNames }, /both classes \(0 positives, 3 negatives\)/],
    ['no feature names', rows, labels, { featureNames: [] }, /featureNames must not be empty/],
    ['duplicate feature names', rows, labels, { featureNames: ['a', 'a'] }, /"a" appears twice/],
    ['zero epochs', rows, labels, { featureNames, epochs: 0 }, /epochs must be an integer >= 1/],
    ['fractional batch', rows, labels, { featureNames, batchSize: 2.5 }, /batchSize must be an integer >= 1/],
    ['negative learning rate', rows, labels, { featureNames, learningRate: -1 }, /learningRate must be a positive/],
    ['negative l2', rows, labels, { featureNames, l2: -1 }, /l2 must be a non-negative/],
    ['fractional seed', rows, labels, { featureNames, seed: 0.5 }, /seed must be an integer/],
  ] as [string, number[][], number[], LogisticRegressionOptions, RegExp][])('rejects %s', (_case, badRows, badLabels, options, message) => {
    expect(() => trainLogisticRegression(badRows, badLabels, options)).toThrow(message);
  });

  it('predictLogisticRegression rejects a row of the wrong length or with NaN', () => {
    const model = trainLogisticRegression(rows, labels, { featureNames, epochs: 1 });
    expect(() => predictLogisticRegression(model, [1])).toThrow(/row has 1 values, the model expects 2/);
    expect(() => predictLogisticRegression(model, [1, NaN])).toThrow(/feature 1 \("b"\) is NaN/);
  });
});

describe('sigmoid', () => {
  it('is stable for large inputs', () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(800)).toBe(1);
    expect(sigmoid(-800)).toBe(0);
    expect(sigmoid(-30)).toBeCloseTo(Math.exp(-30) / (1 + Math.exp(-30)), 25);
  });
});
