/**
 * Logistic regression on standardized features, trained by mini-batch gradient
 * descent with the Adam update, L2 regularization and optional balanced class
 * weights. Pure: no I/O, deterministic for a given seed.
 *
 * The model scores a row x as sigmoid(sum_j weights[j] * (x[j] - mean[j]) / scale[j] + bias),
 * which is exactly the graph `logisticRegressionToOnnx` exports.
 */
import { createRandom } from './random.js';

export interface LogisticRegressionModel {
  featureNames: string[];
  /** Per-feature training mean. */
  mean: number[];
  /** Per-feature training standard deviation (1 for constant features). */
  scale: number[];
  /** Weights on the standardized features. */
  weights: number[];
  bias: number;
}

export interface LogisticRegressionOptions {
  featureNames: string[];
  /** Passes over the training data. Default 20. */
  epochs?: number;
  /** Adam step size. Default 0.01. */
  learningRate?: number;
  /** L2 penalty (l2 / 2) * ||weights||^2 added to the mean loss; the bias is not penalized. Default 1e-4. */
  l2?: number;
  /** Rows per gradient step. Default 256. */
  batchSize?: number;
  /** Seed for the shuffling order. Default 1. */
  seed?: number;
  /** 'balanced' weights each class by n / (2 * n_class), as scikit-learn does. */
  classWeight?: 'balanced' | undefined;
}

export const LOGISTIC_REGRESSION_DEFAULTS = {
  epochs: 20,
  learningRate: 0.01,
  l2: 1e-4,
  batchSize: 256,
  seed: 1,
} as const;

const ADAM_BETA1 = 0.9;
const ADAM_BETA2 = 0.999;
const ADAM_EPSILON = 1e-8;

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

export function trainLogisticRegression(
  rows: ArrayLike<number>[],
  labels: ArrayLike<number>,
  options: LogisticRegressionOptions,
): LogisticRegressionModel {
  const epochs = options.epochs ?? LOGISTIC_REGRESSION_DEFAULTS.epochs;
  const learningRate = options.learningRate ?? LOGISTIC_REGRESSION_DEFAULTS.learningRate;
  const l2 = options.l2 ?? LOGISTIC_REGRESSION_DEFAULTS.l2;
  const batchSize = options.batchSize ?? LOGISTIC_REGRESSION_DEFAULTS.batchSize;
  const seed = options.seed ?? LOGISTIC_REGRESSION_DEFAULTS.seed;
  const featureNames = [...options.featureNames];

  validateFeatureNames(featureNames);
  requireInteger('epochs', epochs, 1);
  requireInteger('batchSize', batchSize, 1);
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`trainLogisticRegression: seed must be an integer, got ${String(seed)}`);
  }
  if (!(Number.isFinite(learningRate) && learningRate > 0)) {
    throw new Error(`trainLogisticRegression: learningRate must be a positive finite number, got ${String(learningRate)}`);
  }
  if (!(Number.isFinite(l2) && l2 >= 0)) {
    throw new Error(`trainLogisticRegression: l2 must be a non-negative finite number, got ${String(l2)}`);
  }
  const { positives, negatives } = validateData(rows, labels, featureNames);

  const n = rows.length;
  const f = featureNames.length;
  const { mean, scale } = standardization(rows, f);

  // Standardized copy, row-major.
  const x = new Float64Array(n * f);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = rows[i] as ArrayLike<number>;
    for (let j = 0; j < f; j++) x[i * f + j] = ((row[j] as number) - (mean[j] as number)) / (scale[j] as number);
    y[i] = labels[i] as number;
  }

  const balanced = options.classWeight === 'balanced';
  const positiveWeight = balanced ? n / (2 * positives) : 1;
  const negativeWeight = balanced ? n / (2 * negatives) : 1;

  const w = new Float64Array(f);
  // Start the bias at the (weighted) log-odds of the base rate.
  let b = Math.log((positives * positiveWeight) / (negatives * negativeWeight));
  const mW = new Float64Array(f);
  const vW = new Float64Array(f);
  let mB = 0;
  let vB = 0;
  let step = 0;
  const gradW = new Float64Array(f);

  const random = createRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);

  for (let epoch = 0; epoch < epochs; epoch++) {
    random.shuffle(order);
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(start + batchSize, n);
      gradW.fill(0);
      let gradB = 0;
      for (let k = start; k < end; k++) {
        const i = order[k] as number;
        const offset = i * f;
        let z = b;
        for (let j = 0; j < f; j++) z += (w[j] as number) * (x[offset + j] as number);
        const yi = y[i] as number;
        const residual = (sigmoid(z) - yi) * (yi === 1 ? positiveWeight : negativeWeight);
        for (let j = 0; j < f; j++) gradW[j] = (gradW[j] as number) + residual * (x[offset + j] as number);
        gradB += residual;
      }
      const size = end - start;
      step++;
      const correction1 = 1 - ADAM_BETA1 ** step;
      const correction2 = 1 - ADAM_BETA2 ** step;
      for (let j = 0; j < f; j++) {
        const g = (gradW[j] as number) / size + l2 * (w[j] as number);
        const m = ADAM_BETA1 * (mW[j] as number) + (1 - ADAM_BETA1) * g;
        const v = ADAM_BETA2 * (vW[j] as number) + (1 - ADAM_BETA2) * g * g;
        mW[j] = m;
        vW[j] = v;
        w[j] = (w[j] as number) - (learningRate * (m / correction1)) / (Math.sqrt(v / correction2) + ADAM_EPSILON);
      }
      const g = gradB / size;
      mB = ADAM_BETA1 * mB + (1 - ADAM_BETA1) * g;
      vB = ADAM_BETA2 * vB + (1 - ADAM_BETA2) * g * g;
      b -= (learningRate * (mB / correction1)) / (Math.sqrt(vB / correction2) + ADAM_EPSILON);
    }
  }

  return { featureNames, mean, scale, weights: Array.from(w), bias: b };
}

/** The probability of class 1 for one row of raw (unstandardized) features. */
export function predictLogisticRegression(model: LogisticRegressionModel, row: ArrayLike<number>): number {
  const f = model.weights.length;
  if (row.length !== f) {
    throw new Error(`predictLogisticRegression: row has ${row.length} values, the model expects ${f}`);
  }
  let z = model.bias;
  for (let j = 0; j < f; j++) {
    const v = row[j] as number;
    if (!Number.isFinite(v)) {
      throw new Error(`predictLogisticRegression: feature ${j} ("${model.featureNames[j] ?? ''}") is ${String(v)}`);
    }
    z += ((model.weights[j] as number) * (v - (model.mean[j] as number))) / (model.scale[j] as number);
  }
  return sigmoid(z);
}

/** Throws unless the model's arrays agree in length, are finite and every scale is positive. */
export function assertLogisticRegressionModel(model: LogisticRegressionModel): void {
  const f = model.featureNames.length;
  validateFeatureNames(model.featureNames);
  for (const key of ['mean', 'scale', 'weights'] as const) {
    const values = model[key];
    if (values.length !== f) {
      throw new Error(`logistic regression model: ${key} has ${values.length} values, featureNames has ${f}`);
    }
    values.forEach((v, j) => {
      if (!Number.isFinite(v)) throw new Error(`logistic regression model: ${key}[${j}] is ${String(v)}`);
      if (key === 'scale' && v <= 0) throw new Error(`logistic regression model: scale[${j}] is ${v}, must be > 0`);
    });
  }
  if (!Number.isFinite(model.bias)) throw new Error(`logistic regression model: bias is ${String(model.bias)}`);
}

function standardization(rows: ArrayLike<number>[], f: number): { mean: number[]; scale: number[] } {
  const n = rows.length;
  const mean: number[] = [];
  const scale: number[] = [];
  for (let j = 0; j < f; j++) {
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const row of rows) {
      const v = row[j] as number;
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (min === max) {
      // Constant feature: exact mean, unit scale (summing may not reproduce the value exactly).
      mean.push(min);
      scale.push(1);
      continue;
    }
    const m = sum / n;
    let squares = 0;
    for (const row of rows) squares += ((row[j] as number) - m) ** 2;
    const std = Math.sqrt(squares / n);
    mean.push(m);
    scale.push(std > 0 ? std : 1);
  }
  return { mean, scale };
}

function validateFeatureNames(featureNames: readonly string[]): void {
  if (featureNames.length === 0) throw new Error('logistic regression: featureNames must not be empty');
  const seen = new Set<string>();
  featureNames.forEach((name, j) => {
    if (typeof name !== 'string' || name.length === 0) {
      throw new Error(`logistic regression: featureNames[${j}] must be a non-empty string`);
    }
    if (seen.has(name)) throw new Error(`logistic regression: feature name "${name}" appears twice`);
    seen.add(name);
  });
}

function validateData(
  rows: ArrayLike<number>[],
  labels: ArrayLike<number>,
  featureNames: readonly string[],
): { positives: number; negatives: number } {
  if (rows.length === 0) throw new Error('trainLogisticRegression: no training rows');
  if (rows.length !== labels.length) {
    throw new Error(`trainLogisticRegression: ${rows.length} rows but ${labels.length} labels`);
  }
  const f = featureNames.length;
  let positives = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as ArrayLike<number>;
    if (row.length !== f) {
      throw new Error(`trainLogisticRegression: rows[${i}] has ${row.length} values, featureNames has ${f}`);
    }
    for (let j = 0; j < f; j++) {
      const v = row[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new Error(`trainLogisticRegression: rows[${i}][${j}] (feature "${featureNames[j] ?? ''}") is ${String(v)}`);
      }
    }
    const label = labels[i];
    if (label !== 0 && label !== 1) {
      throw new Error(`trainLogisticRegression: labels[${i}] is ${String(label)}, labels must be 0 or 1`);
    }
    positives += label;
  }
  const negatives = rows.length - positives;
  if (positives === 0 || negatives === 0) {
    throw new Error(`trainLogisticRegression: labels must contain both classes (${positives} positives, ${negatives} negatives)`);
  }
  return { positives, negatives };
}

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`trainLogisticRegression: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}
