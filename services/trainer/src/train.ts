/**
 * Trains the example's fraud model and writes a model version directory:
 *   npm run train -w services/trainer -- [--algorithm logistic_regression|gbt] [--rows 60000] [--seed 1]
 *     [--out models/fraud_detector/1] [--version 1] [--champion models/fraud_detector/1] [--training-set set.json]
 *     [--trees 300] [--learning-rate 0.1] [--max-leaves 31] [--max-depth 6]   (gbt only)
 * The model (a logistic regression by default, or gradient-boosted trees) is exported to ONNX
 * with the project's own builder; `manifest.json` records its features, sha256, algorithm and
 * hyperparameters, validation metrics (AUC, log loss, calibration) on the most recent fifth
 * of the rows, and the reference profile the monitor needs. With `--champion <version dir>`
 * the serving champion scores the same validation rows through onnxruntime, and both
 * models' metrics are printed and recorded side by side.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildProfile,
  compareModels,
  GRADIENT_BOOSTING_MODEL_TYPE,
  gradientBoostingToOnnx,
  LOGISTIC_REGRESSION_DEFAULTS,
  logisticRegressionToOnnx,
  predictGradientBoosting,
  predictLogisticRegression,
  scoreOnnx,
  trainGradientBoosting,
  trainLogisticRegression,
  validationMetrics,
  type ModelComparison,
  type ValidationMetrics,
} from '@tributary/shared';
import { TRAINING_SET_FORMAT, type TrainingSet } from './build-training-set.js';
import { buildDataset, type Dataset } from './dataset.js';

const ALGORITHMS = { logistic_regression: 'logistic_regression', gbt: GRADIENT_BOOSTING_MODEL_TYPE } as const;
/** The largest difference allowed between the trainer's scores and the exported ONNX model's. */
const ONNX_TOLERANCE = 1e-5;

const { values } = parseArgs({
  options: {
    algorithm: { type: 'string', default: 'logistic_regression' },
    rows: { type: 'string', default: '60000' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: resolve(import.meta.dirname, '../../../models/fraud_detector/1') },
    version: { type: 'string', default: '1' },
    champion: { type: 'string' },
    // A training set from `npm run training-set` (JSON format): its rows, labels and time split.
    'training-set': { type: 'string' },
    trees: { type: 'string', default: '300' },
    'learning-rate': { type: 'string', default: '0.1' },
    'max-leaves': { type: 'string', default: '31' },
    'max-depth': { type: 'string', default: '6' },
  },
});
const rows = Number(values.rows);
const seed = Number(values.seed);
if (!Number.isInteger(rows) || rows < 1000) throw new Error('--rows must be an integer >= 1000');
if (!Number.isInteger(seed) || seed < 0) throw new Error('--seed must be a non-negative integer');
if (!(values.algorithm! in ALGORITHMS))
  throw new Error(`--algorithm must be one of ${Object.keys(ALGORITHMS).join(', ')}, got ${values.algorithm}`);
const algorithm = ALGORITHMS[values.algorithm as keyof typeof ALGORITHMS];
// Relative paths are the caller's: `npm run train -w services/trainer` runs in services/trainer.
const callerDir = process.env.INIT_CWD ?? process.cwd();
const outDir = resolve(callerDir, values.out!);
const championDir = values.champion === undefined ? undefined : resolve(callerDir, values.champion);

const started = performance.now();
const trainingSet = values['training-set'] === undefined ? null : await readTrainingSet(resolve(callerDir, values['training-set']));
const dataset: Dataset = trainingSet
  ? {
      features: trainingSet.features,
      rows: trainingSet.rows.map((row) => Float32Array.from(row)),
      labels: trainingSet.labels,
      times: trainingSet.times,
    }
  : await buildDataset({ rows, seed, users: 2000, fraudRate: 0.03, ratePerSecond: 20, start: Date.UTC(2026, 0, 1) });
// Split by time: train on the past, validate on the most recent slice (the set's own split, or the last fifth).
const cut = trainingSet ? trainingSet.split.train : Math.floor(dataset.rows.length * 0.8);
const trainRows = dataset.rows.slice(0, cut);
const trainLabels = dataset.labels.slice(0, cut);
const validation = dataset.rows.slice(cut);
const truth = dataset.labels.slice(cut);
const name = trainingSet?.model.name ?? 'fraud_detector';
const meta = { name, version: values.version! };

interface Trained {
  predict(row: Float32Array): number;
  bytes: Uint8Array;
  hyperparameters: Record<string, unknown>;
  /** Facts of the fit itself (trees kept, rounds, ...). */
  fit?: Record<string, unknown>;
}

function trainLogistic(): Trained {
  const { epochs, learningRate, l2, batchSize } = { ...LOGISTIC_REGRESSION_DEFAULTS, epochs: 30, learningRate: 0.01 };
  const hyperparameters = { epochs, learningRate, l2, batchSize };
  const model = trainLogisticRegression(trainRows, trainLabels, { featureNames: dataset.features, seed, ...hyperparameters });
  return {
    predict: (row) => predictLogisticRegression(model, row),
    bytes: logisticRegressionToOnnx(model, meta),
    hyperparameters: snakeCase(hyperparameters),
  };
}

function trainTrees(): Trained {
  // Early stopping watches the last eighth of the training window (still before the
  // validation rows), so the validation metrics stay those of unseen data.
  const stop = Math.floor(cut * (7 / 8));
  const result = trainGradientBoosting(trainRows.slice(0, stop), trainLabels.slice(0, stop), {
    featureNames: dataset.features,
    seed,
    trees: positiveNumber('trees'),
    learningRate: positiveNumber('learning-rate'),
    maxLeaves: positiveNumber('max-leaves'),
    maxDepth: positiveNumber('max-depth'),
    validation: { rows: trainRows.slice(stop), labels: trainLabels.slice(stop) },
  });
  const { model } = result;
  return {
    predict: (row) => predictGradientBoosting(model, row),
    bytes: gradientBoostingToOnnx(model, meta),
    // The seed is recorded once, beside the hyperparameters.
    hyperparameters: snakeCase({ ...result.params, seed: undefined }),
    fit: {
      trees: model.trees.length,
      rounds: result.rounds,
      leaves: model.trees.reduce((sum, tree) => sum + tree.feature.filter((j) => j < 0).length, 0),
      early_stopping_rows: cut - stop,
      early_stopping_log_loss: result.validationLogLoss[model.trees.length - 1],
    },
  };
}

const trained = algorithm === 'logistic_regression' ? trainLogistic() : trainTrees();
const scores = validation.map((row) => trained.predict(row));
const metrics: ValidationMetrics = validationMetrics(scores, truth);
const width = dataset.features.length;

// The exported model must score like the trainer (the float32 rule makes this exact up to rounding).
const onnxScores = await scoreOnnx(
  trained.bytes,
  { input: 'features', output: 'score' },
  packRows(validation, width),
  validation.length,
  width,
);
const onnxDiff = scores.reduce((max, s, i) => Math.max(max, Math.abs(s - onnxScores[i]!)), 0);
if (!(onnxDiff <= ONNX_TOLERANCE))
  throw new Error(`the exported ONNX model scores differ from the trainer's by ${onnxDiff} (> ${ONNX_TOLERANCE})`);

const championComparison = championDir === undefined ? undefined : await compareWithChampion(championDir);

// The reference the monitor compares live traffic with: the training inputs and their scores.
const profileRows = trainRows.map((row) => {
  const record: Record<string, number> = { score: trained.predict(row) };
  dataset.features.forEach((feature, i) => (record[feature] = row[i]!));
  return record;
});
const profile = buildProfile(
  profileRows,
  ['score', ...dataset.features].map((feature) => ({ name: feature, kind: 'numeric' as const })),
);
const manifest = {
  name,
  version: values.version!,
  format: 'onnx',
  file: 'model.onnx',
  sha256: createHash('sha256').update(trained.bytes).digest('hex'),
  input: 'features',
  output: 'score',
  features: dataset.features,
  threshold: 0.5,
  created_at: new Date().toISOString(),
  training: {
    algorithm,
    seed,
    rows: cut,
    hyperparameters: trained.hyperparameters,
    ...(trained.fit === undefined ? {} : { fit: trained.fit }),
    // Event times of the training rows, and of the validation rows after them.
    window: { from: new Date(dataset.times[0]!).toISOString(), to: new Date(dataset.times[cut - 1]!).toISOString() },
    validation_window: { from: new Date(dataset.times[cut]!).toISOString(), to: new Date(dataset.times.at(-1)!).toISOString() },
    data: trainingSet
      ? `training set from the ${trainingSet.source === 'prediction_log' ? 'prediction log of' : 'point-in-time backfill for'} ${trainingSet.model.name} v${trainingSet.model.version}, labels as of ${new Date(trainingSet.cutoff).toISOString()} (${trainingSet.label_policy.unlabelled === 'negative' ? `unlabelled rows older than ${trainingSet.label_policy.maturity_ms} ms negative` : 'unlabelled rows dropped'})`
      : 'simulated card transactions (services/simulator), features replayed point-in-time through the feature pipeline',
    validation: metrics,
    ...(championComparison === undefined ? {} : { champion_comparison: championComparison }),
  },
  profile,
};
await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'model.onnx'), trained.bytes);
await writeFile(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(
  `trained ${name} v${values.version} (${algorithm}) on ${cut} rows in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
    `validation AUC ${metrics.auc.toFixed(4)}, log loss ${metrics.log_loss.toFixed(4)}, ECE ${metrics.ece.toFixed(4)} ` +
    `(${metrics.positives}/${metrics.rows} positives); ONNX max abs diff ${onnxDiff.toExponential(1)}; wrote ${outDir}`,
);
if (championComparison) printComparison(championComparison);

/** Reads a JSON training set and checks it can be trained on (two classes on each side of the split). */
async function readTrainingSet(file: string): Promise<TrainingSet> {
  let set: TrainingSet;
  try {
    set = JSON.parse(await readFile(file, 'utf8')) as TrainingSet;
  } catch (error) {
    throw new Error(
      `--training-set ${file}: not a JSON training set (${(error as Error).message}); build one with npm run training-set -- … --format json`,
    );
  }
  if (set.format !== TRAINING_SET_FORMAT || !Array.isArray(set.rows) || !Array.isArray(set.features))
    throw new Error(
      `--training-set ${file}: not a training set of format ${TRAINING_SET_FORMAT} (npm run training-set -- … --format json)`,
    );
  const { train, validation } = set.split;
  const classes = (labels: number[]) => new Set(labels).size;
  if (train < 100 || validation < 20 || classes(set.labels.slice(0, train)) < 2 || classes(set.labels.slice(train)) < 2)
    throw new Error(
      `--training-set ${file}: ${train} training and ${validation} validation rows; both sides of the split need both labels (and at least 100 and 20 rows)`,
    );
  return set;
}

type ChampionComparison = ModelComparison & {
  champion_model: Record<string, unknown>;
  champion_trained_on_validation_window: boolean | null;
};

/** Scores the validation rows with the champion's ONNX model, its features picked by name. */
async function compareWithChampion(dir: string): Promise<ChampionComparison> {
  const where = join(dir, 'manifest.json');
  const champion = JSON.parse(await readFile(where, 'utf8')) as {
    name?: string;
    version?: string;
    file?: string;
    sha256?: string;
    input?: string;
    output?: string;
    output_column?: number;
    features?: string[];
    training?: { algorithm?: string; window?: { from?: string; to?: string } };
  };
  const { file, input, output, features } = champion;
  if (typeof file !== 'string' || typeof input !== 'string' || typeof output !== 'string' || !Array.isArray(features)) {
    throw new Error(`${where}: a model manifest needs file, input, output and features`);
  }
  const bytes = await readFile(join(dir, file));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== champion.sha256)
    throw new Error(`${join(dir, file)}: sha256 ${sha256} does not match the manifest's ${String(champion.sha256)}`);
  const columns = features.map((feature) => {
    const at = dataset.features.indexOf(feature);
    if (at < 0) throw new Error(`the champion's feature "${feature}" is not in this training set (${dataset.features.join(', ')})`);
    return at;
  });
  const picked = validation.map((row) => Float32Array.from(columns, (c) => row[c]!));
  const championScores = await scoreOnnx(
    bytes,
    { input, output, column: champion.output_column ?? 0 },
    packRows(picked, columns.length),
    picked.length,
    columns.length,
  );
  return {
    champion_model: { name: champion.name, version: champion.version, algorithm: champion.training?.algorithm, sha256 },
    champion_trained_on_validation_window: overlapsValidation(champion.training?.window),
    ...compareModels(scores, championScores, truth),
  };
}

/**
 * Whether a training window (event times) reaches into this run's validation rows: then the
 * champion has seen them and the comparison flatters it. Null when the window is not known.
 */
function overlapsValidation(window: { from?: string; to?: string } | undefined): boolean | null {
  const from = Date.parse(window?.from ?? '');
  const to = Date.parse(window?.to ?? '');
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return from <= dataset.times.at(-1)! && to >= dataset.times[cut]!;
}

function printComparison(c: ChampionComparison): void {
  const label = `${String(c.champion_model.name)} v${String(c.champion_model.version)}`;
  console.log(`same ${c.rows} validation rows      challenger   champion (${label})   difference`);
  for (const key of ['auc', 'log_loss', 'ece'] as const) {
    console.log(
      `  ${key.padEnd(30)} ${c.challenger[key].toFixed(4).padStart(10)}   ${c.champion[key].toFixed(4).padStart(10)}   ${c.difference[key] >= 0 ? '+' : ''}${c.difference[key].toFixed(4)}`,
    );
  }
  if (c.champion_trained_on_validation_window === true) {
    console.log(`warning: the champion was trained on events of this validation window; the comparison flatters it`);
  }
}

function packRows(list: readonly Float32Array[], w: number): Float32Array {
  const data = new Float32Array(list.length * w);
  list.forEach((row, i) => data.set(row, i * w));
  return data;
}

function positiveNumber(flag: 'trees' | 'learning-rate' | 'max-leaves' | 'max-depth'): number {
  const v = Number(values[flag]);
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`--${flag} must be a positive number, got ${String(values[flag])}`);
  return v;
}

function snakeCase(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]));
}
