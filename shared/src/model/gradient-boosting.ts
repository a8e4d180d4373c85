/**
 * Gradient-boosted regression trees for binary classification on log loss, in the manner
 * of LightGBM and XGBoost: features binned once into quantile histograms, trees grown
 * leaf-wise with depth and leaf limits, Newton-step leaf values with L2 regularisation,
 * shrinkage, row and feature subsampling from a seeded generator, missing values (NaN)
 * sent down a learned default side, and optional early stopping on a validation set.
 * Pure: no I/O, deterministic for a given seed.
 *
 * The float32 rule: the model only ever compares float32 values. Inputs are rounded to
 * float32 (`Math.fround`, as a Float32Array or an ONNX float tensor does) and every
 * threshold is a float32 value taken from the training data, so `x <= threshold` decides
 * the same way here and in ONNX's TreeEnsembleRegressor (`BRANCH_LEQ`). Leaf values and the
 * base score are float32 too; what differs from ONNX is only the order and precision of
 * the final sum.
 *
 * The model scores a row as sigmoid(baseScore + sum over trees of the row's leaf value).
 */
import { binMatrix, MAX_BINS } from './feature-bins.js';
import { sigmoid } from './logistic-regression.js';
import { createRandom } from './random.js';
import { binnedLeafValue, TreeGrower, type BinnedTree, type RegressionTree } from './regression-tree.js';

export type { RegressionTree } from './regression-tree.js';

export interface GradientBoostingModel {
  featureNames: string[];
  /** Initial log-odds (float32): the training base rate's. */
  baseScore: number;
  trees: RegressionTree[];
}

export interface GradientBoostingOptions {
  featureNames: string[];
  /** Boosting rounds (one tree each); fewer are kept when early stopping triggers. Default 100. */
  trees?: number;
  /** Shrinkage applied to every leaf value. Default 0.1. */
  learningRate?: number;
  /** Maximum depth of a leaf (the root is depth 0). Default 6. */
  maxDepth?: number;
  /** Maximum leaves per tree; leaves are split best gain first. Default 31. */
  maxLeaves?: number;
  /** Minimum training rows in a leaf. Default 20. */
  minSamplesLeaf?: number;
  /** Minimum sum of hessians p(1 - p) in a leaf. Default 1e-3. */
  minHessianLeaf?: number;
  /** L2 penalty on leaf values (the lambda of the Newton step). Default 1. */
  l2?: number;
  /** Minimum gain for a split. Default 0. */
  minSplitGain?: number;
  /** Fraction of rows each tree is grown on, drawn per tree. Default 1. */
  subsample?: number;
  /** Fraction of features each tree may split on, drawn per tree. Default 1. */
  featureFraction?: number;
  /** Histogram bins per feature, at most 255. Default 255. */
  maxBins?: number;
  /** Seed of the row and feature sampling. Default 1. */
  seed?: number;
  /** Rows whose log loss decides early stopping (not trained on). */
  validation?: { rows: readonly ArrayLike<number>[]; labels: ArrayLike<number> };
  /** Stop after this many rounds without a better validation log loss, and keep the best rounds. Default 20. */
  earlyStoppingRounds?: number;
}

export const GRADIENT_BOOSTING_DEFAULTS = {
  trees: 100,
  learningRate: 0.1,
  maxDepth: 6,
  maxLeaves: 31,
  minSamplesLeaf: 20,
  minHessianLeaf: 1e-3,
  l2: 1,
  minSplitGain: 0,
  subsample: 1,
  featureFraction: 1,
  maxBins: 255,
  seed: 1,
  earlyStoppingRounds: 20,
} as const;

export type GradientBoostingParams = { -readonly [K in keyof typeof GRADIENT_BOOSTING_DEFAULTS]: number };

export interface GradientBoostingResult {
  model: GradientBoostingModel;
  /** The settings used, defaults filled in. */
  params: GradientBoostingParams;
  /** Rounds trained, including those early stopping then dropped. */
  rounds: number;
  /** Validation log loss after each round (empty without a validation set). */
  validationLogLoss: number[];
}

export function trainGradientBoosting(
  rows: readonly ArrayLike<number>[],
  labels: ArrayLike<number>,
  options: GradientBoostingOptions,
): GradientBoostingResult {
  const params = gradientBoostingParams(options);
  const featureNames = [...options.featureNames];
  validateFeatureNames(featureNames);
  const f = featureNames.length;
  const n = rows.length;
  const data = toFloat32Matrix(rows, f, 'rows');
  const y = toLabels(labels, n, 'labels');
  let positives = 0;
  for (let i = 0; i < n; i++) positives += y[i] as number;
  if (positives === 0 || positives === n) {
    throw new Error(`trainGradientBoosting: labels must contain both classes (${positives} positives, ${n - positives} negatives)`);
  }
  const validation = options.validation;
  const vn = validation?.rows.length ?? 0;
  const vdata = validation ? toFloat32Matrix(validation.rows, f, 'validation.rows') : new Float32Array(0);
  const vy = validation ? toLabels(validation.labels, vn, 'validation.labels') : new Uint8Array(0);
  if (validation && vn === 0) throw new Error('trainGradientBoosting: the validation set has no rows');

  const matrix = binMatrix(data, n, f, params.maxBins);
  const grower = new TreeGrower(matrix, params);
  const baseScore = Math.fround(Math.log(positives / (n - positives)));
  const score = new Float64Array(n).fill(baseScore);
  const vscore = new Float64Array(vn).fill(baseScore);
  const gradient = new Float64Array(n);
  const hessian = new Float64Array(n);
  const random = createRandom(params.seed);
  const sampledRows = new Int32Array(n);
  const allFeatures = Int32Array.from({ length: f }, (_, j) => j);
  const featureCount = Math.max(1, Math.round(params.featureFraction * f));

  const trees: RegressionTree[] = [];
  const validationLogLoss: number[] = [];
  let best = Infinity;
  let bestRounds = 0;
  for (let round = 0; round < params.trees; round++) {
    for (let i = 0; i < n; i++) {
      const p = sigmoid(score[i] as number);
      gradient[i] = p - (y[i] as number);
      hessian[i] = p * (1 - p);
    }
    let count = 0;
    if (params.subsample < 1) {
      for (let i = 0; i < n; i++) if (random.next() < params.subsample) sampledRows[count++] = i;
    } else {
      for (let i = 0; i < n; i++) sampledRows[i] = i;
      count = n;
    }
    let features = allFeatures;
    if (featureCount < f) {
      const shuffled = random.shuffle(Array.from(allFeatures));
      features = Int32Array.from(shuffled.slice(0, featureCount)).sort();
    }
    const tree = grower.grow(sampledRows, count, features, gradient, hessian);
    for (let i = 0; i < n; i++) score[i] = (score[i] as number) + binnedLeafValue(tree, matrix, i);
    trees.push(withoutBins(tree));

    if (validation) {
      let loss = 0;
      for (let i = 0; i < vn; i++) {
        const z = (vscore[i] as number) + leafValue(tree, vdata, i * f);
        vscore[i] = z;
        loss += (vy[i] as number) === 1 ? softplus(-z) : softplus(z);
      }
      loss /= vn;
      validationLogLoss.push(loss);
      if (loss < best) {
        best = loss;
        bestRounds = round + 1;
      } else if (round + 1 - bestRounds >= params.earlyStoppingRounds) {
        break;
      }
    }
  }
  const rounds = trees.length;
  if (validation) trees.length = bestRounds;
  return { model: { featureNames, baseScore, trees }, params, rounds, validationLogLoss };
}

/** The log-odds the model gives one row (NaN = missing). */
export function predictGradientBoostingLogit(model: GradientBoostingModel, row: ArrayLike<number>): number {
  const f = model.featureNames.length;
  if (row.length !== f) throw new Error(`predictGradientBoosting: row has ${row.length} values, the model expects ${f}`);
  let z = model.baseScore;
  for (const tree of model.trees) z += leafValue(tree, row, 0);
  return z;
}

/** The probability of class 1 for one row (NaN = missing). */
export function predictGradientBoosting(model: GradientBoostingModel, row: ArrayLike<number>): number {
  return sigmoid(predictGradientBoostingLogit(model, row));
}

/** Probabilities for `rows` rows laid out one after another in `data`. */
export function predictGradientBoostingBatch(model: GradientBoostingModel, data: ArrayLike<number>, rows: number): Float64Array {
  const f = model.featureNames.length;
  if (data.length !== rows * f) throw new Error(`predictGradientBoostingBatch: ${data.length} values for ${rows} rows of ${f}`);
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let z = model.baseScore;
    for (const tree of model.trees) z += leafValue(tree, data, i * f);
    out[i] = sigmoid(z);
  }
  return out;
}

/** Throws unless the trees are well-formed: consistent arrays, float32 thresholds and values, children after parents. */
export function assertGradientBoostingModel(model: GradientBoostingModel): void {
  validateFeatureNames(model.featureNames);
  const f = model.featureNames.length;
  if (!isFloat32(model.baseScore)) throw new Error(`gradient boosting model: baseScore ${String(model.baseScore)} is not a finite float32`);
  model.trees.forEach((tree, t) => {
    const size = tree.feature.length;
    const where = `gradient boosting model: tree ${t}`;
    if (size === 0) throw new Error(`${where} has no nodes`);
    for (const key of ['threshold', 'left', 'right', 'missingLeft', 'value'] as const) {
      if (tree[key].length !== size) throw new Error(`${where}: ${key} has ${tree[key].length} entries, feature has ${size}`);
    }
    for (let k = 0; k < size; k++) {
      const j = tree.feature[k] as number;
      if (j === -1) {
        if (!isFloat32(tree.value[k] as number))
          throw new Error(`${where}, node ${k}: leaf value ${String(tree.value[k])} is not a finite float32`);
        continue;
      }
      if (!Number.isInteger(j) || j < 0 || j >= f) throw new Error(`${where}, node ${k}: feature ${String(j)} is not in [0, ${f})`);
      if (!isFloat32(tree.threshold[k] as number)) {
        throw new Error(`${where}, node ${k}: threshold ${String(tree.threshold[k])} is not a finite float32`);
      }
      for (const child of [tree.left[k] as number, tree.right[k] as number]) {
        if (!Number.isInteger(child) || child <= k || child >= size) {
          throw new Error(`${where}, node ${k}: child ${String(child)} must come after its parent and exist`);
        }
      }
    }
  });
}

/** The leaf value for the row starting at `offset` in `data`. */
function leafValue(tree: RegressionTree, data: ArrayLike<number>, offset: number): number {
  let node = 0;
  for (;;) {
    const j = tree.feature[node] as number;
    if (j < 0) return tree.value[node] as number;
    const x = Math.fround(data[offset + j] as number);
    const goLeft = x !== x ? (tree.missingLeft[node] as boolean) : x <= (tree.threshold[node] as number);
    node = (goLeft ? tree.left[node] : tree.right[node]) as number;
  }
}

function withoutBins(tree: BinnedTree): RegressionTree {
  const { feature, threshold, left, right, missingLeft, value } = tree;
  return { feature, threshold, left, right, missingLeft, value };
}

/** log(1 + e^z), without overflow. */
function softplus(z: number): number {
  return Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
}

function isFloat32(v: number): boolean {
  return Number.isFinite(v) && Math.fround(v) === v;
}

/** The parameters `trainGradientBoosting` uses: the defaults and `options`; throws, naming the first out of its range. */
export function gradientBoostingParams(options: Partial<GradientBoostingParams>): GradientBoostingParams {
  const p: GradientBoostingParams = { ...GRADIENT_BOOSTING_DEFAULTS };
  for (const key of Object.keys(GRADIENT_BOOSTING_DEFAULTS) as (keyof GradientBoostingParams)[]) {
    const v = options[key];
    if (v !== undefined) p[key] = v;
  }
  const integer = (key: keyof GradientBoostingParams, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const v = p[key];
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new Error(`trainGradientBoosting: ${key} must be an integer in [${min}, ${max}], got ${String(v)}`);
    }
  };
  const range = (key: keyof GradientBoostingParams, min: number, max: number, openMin: boolean): void => {
    const v = p[key];
    if (!(Number.isFinite(v) && (openMin ? v > min : v >= min) && v <= max)) {
      throw new Error(`trainGradientBoosting: ${key} must be a number in ${openMin ? '(' : '['}${min}, ${max}], got ${String(v)}`);
    }
  };
  integer('trees', 1);
  integer('maxDepth', 1);
  integer('maxLeaves', 2);
  integer('minSamplesLeaf', 1);
  integer('maxBins', 2, MAX_BINS);
  integer('seed', 0);
  integer('earlyStoppingRounds', 1);
  range('learningRate', 0, 1, true);
  range('subsample', 0, 1, true);
  range('featureFraction', 0, 1, true);
  range('minHessianLeaf', 0, Infinity, false);
  range('l2', 0, Infinity, false);
  range('minSplitGain', 0, Infinity, false);
  return p;
}

function validateFeatureNames(featureNames: readonly string[]): void {
  if (featureNames.length === 0) throw new Error('gradient boosting: featureNames must not be empty');
  const seen = new Set<string>();
  featureNames.forEach((name, j) => {
    if (typeof name !== 'string' || name.length === 0) throw new Error(`gradient boosting: featureNames[${j}] must be a non-empty string`);
    if (seen.has(name)) throw new Error(`gradient boosting: feature name "${name}" appears twice`);
    seen.add(name);
  });
}

/** Row-major float32 copy; NaN (missing) allowed, anything but a number rejected. */
function toFloat32Matrix(rows: readonly ArrayLike<number>[], f: number, what: string): Float32Array {
  if (rows.length === 0) throw new Error(`trainGradientBoosting: ${what} is empty`);
  const data = new Float32Array(rows.length * f);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i] as ArrayLike<number>;
    if (row.length !== f) throw new Error(`trainGradientBoosting: ${what}[${i}] has ${row.length} values, featureNames has ${f}`);
    for (let j = 0; j < f; j++) {
      const v = row[j];
      if (typeof v !== 'number') throw new Error(`trainGradientBoosting: ${what}[${i}][${j}] is ${String(v)}, not a number`);
      data[i * f + j] = v;
    }
  }
  return data;
}

function toLabels(labels: ArrayLike<number>, n: number, what: string): Uint8Array {
  if (labels.length !== n) throw new Error(`trainGradientBoosting: ${n} rows but ${labels.length} ${what}`);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels[i];
    if (label !== 0 && label !== 1) throw new Error(`trainGradientBoosting: ${what}[${i}] is ${String(label)}, labels must be 0 or 1`);
    y[i] = label;
  }
  return y;
}
