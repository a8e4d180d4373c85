/**
 * Trains a model version on a dataset split by time, exports it to ONNX, checks the export
 * scores like the trainer, optionally scores the champion on the same validation rows, and
 * builds the version's manifest (validation metrics, comparison, reference profile). Used by
 * `npm run train` (train.ts) and `npm run retrain` (retrain.ts).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  buildProfileOfColumns,
  compareModels,
  GRADIENT_BOOSTING_MODEL_TYPE,
  gradientBoostingToOnnx,
  LOGISTIC_REGRESSION_DEFAULTS,
  logisticRegressionToOnnx,
  MAX_EVENT_TIME,
  predictGradientBoosting,
  predictLogisticRegression,
  scoreFeature,
  scoreOnnx,
  trainGradientBoosting,
  trainLogisticRegression,
  validationMetrics,
  type FeatureDefault,
  type FeatureTypeSpec,
  type ModelComparison,
  type ReferenceProfile,
  type ValidationMetrics,
} from '@tributary/shared';
import { TRAINING_SET_FORMAT, type TrainingSet } from './build-training-set.js';
import type { Dataset } from './dataset.js';

export const ALGORITHMS = { logistic_regression: 'logistic_regression', gbt: GRADIENT_BOOSTING_MODEL_TYPE } as const;
export type AlgorithmFlag = keyof typeof ALGORITHMS;
/** The largest difference allowed between the trainer's scores and the exported ONNX model's. */
const ONNX_TOLERANCE = 1e-5;
/** The decision threshold written into the manifest (and made an edge of the score's profile). */
const THRESHOLD = 0.5;

export interface TreeSettings {
  trees: number;
  learningRate: number;
  maxLeaves: number;
  maxDepth: number;
}

export const TREE_DEFAULTS: TreeSettings = { trees: 300, learningRate: 0.1, maxLeaves: 31, maxDepth: 6 };

export interface TrainModelOptions {
  dataset: Dataset;
  /** Rows before this index train, the rest validate. */
  cut: number;
  /** Where the dataset came from, if a training set (recorded in the manifest): `datasetOf`'s `origin`. */
  trainingSet: TrainingSetOrigin | null;
  algorithm: AlgorithmFlag;
  name: string;
  version: string;
  seed: number;
  trees?: TreeSettings;
  /** A champion version directory to score on the same validation rows. */
  championDir?: string;
}

export type ChampionComparison = ModelComparison & {
  champion_model: Record<string, unknown>;
  champion_trained_on_validation_window: boolean | null;
};

export interface TrainedVersion {
  manifest: TrainedManifest;
  bytes: Uint8Array;
  metrics: ValidationMetrics;
  comparison: ChampionComparison | undefined;
  onnxDiff: number;
  /** Training rows (before the split). */
  trainRows: number;
}

export interface TrainedManifest {
  name: string;
  version: string;
  format: 'onnx';
  file: string;
  sha256: string;
  input: string;
  output: string;
  features: string[];
  feature_types?: Record<string, FeatureTypeSpec>;
  defaults?: Record<string, FeatureDefault>;
  threshold: number;
  created_at: string;
  training: Record<string, unknown> & { algorithm: string; validation: ValidationMetrics; champion_comparison?: ChampionComparison };
  profile: ReferenceProfile;
}

interface Trained {
  predict(row: Float32Array): number;
  bytes: Uint8Array;
  hyperparameters: Record<string, unknown>;
  /** Facts of the fit itself (trees kept, rounds, ...). */
  fit?: Record<string, unknown>;
}

/** Checks that a training set can be trained on; throws with what is missing. */
export function checkTrainingSet(set: TrainingSet): void {
  if (set.format !== TRAINING_SET_FORMAT || !Array.isArray(set.rows) || !Array.isArray(set.features))
    throw new Error(`not a training set of format ${TRAINING_SET_FORMAT} (npm run training-set -- … --format json)`);
  const width = set.features.length;
  const rows = set.rows.length;
  if (!Array.isArray(set.labels) || set.labels.length !== rows || !Array.isArray(set.times) || set.times.length !== rows)
    throw new Error(`${rows} rows, but ${set.labels?.length} labels and ${set.times?.length} times: one of each per row`);
  for (let r = 0; r < rows; r++) {
    const row = set.rows[r] as unknown;
    if (!Array.isArray(row) || row.length !== width) throw new Error(`rows[${r}] is not an array of ${width} values, one per feature`);
    for (let f = 0; f < width; f++) {
      if (typeof row[f] !== 'number' || !Number.isFinite(row[f]))
        throw new Error(`rows[${r}][${f}] ("${set.features[f]}") is ${JSON.stringify(row[f])}, expected a number`);
    }
    if (set.labels[r] !== 0 && set.labels[r] !== 1) throw new Error(`labels[${r}] is ${JSON.stringify(set.labels[r])}, expected 0 or 1`);
    if (!isDateTime(set.times[r]))
      throw new Error(`times[${r}] is ${JSON.stringify(set.times[r])}, expected epoch ms (up to ${MAX_EVENT_TIME})`);
  }
  if (!isDateTime(set.cutoff)) throw new Error(`cutoff is ${JSON.stringify(set.cutoff)}, expected epoch ms (up to ${MAX_EVENT_TIME})`);
  const { train, validation } = set.split ?? {};
  if (!Number.isInteger(train) || !Number.isInteger(validation) || train + validation !== rows)
    throw new Error(`split ${JSON.stringify(set.split)} does not divide the ${rows} rows into training and validation`);
  const classes = (labels: number[]) => new Set(labels).size;
  if (train < 100 || validation < 20 || classes(set.labels.slice(0, train)) < 2 || classes(set.labels.slice(train)) < 2)
    throw new Error(
      `${train} training and ${validation} validation rows; both sides of the split need both labels (and at least 100 and 20 rows)`,
    );
}

/** A time the manifest can show as a date (its windows, the cut-off). */
function isDateTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_EVENT_TIME;
}

/** What the manifest records of the training set a model was trained on. */
export type TrainingSetOrigin = Pick<TrainingSet, 'source' | 'model' | 'cutoff' | 'label_policy'>;

/**
 * A training set as the trainer's dataset, with the index of its first validation row and the
 * set's origin. The dataset holds the rows again (as float32): a caller keeps these, not the set,
 * so that the rows are not held twice while the model trains.
 */
export function datasetOf(set: TrainingSet): { dataset: Dataset; cut: number; origin: TrainingSetOrigin } {
  return {
    dataset: {
      features: set.features,
      // A set built for a model without types (served as numbers) leaves its features without one.
      featureTypes: set.model.feature_types ?? {},
      ...(set.model.defaults === undefined ? {} : { defaults: set.model.defaults }),
      rows: set.rows.map((row) => Float32Array.from(row)),
      labels: set.labels,
      times: set.times,
    },
    cut: set.split.train,
    origin: { source: set.source, model: set.model, cutoff: set.cutoff, label_policy: set.label_policy },
  };
}

export async function trainModel(options: TrainModelOptions): Promise<TrainedVersion> {
  const { dataset, cut, trainingSet, algorithm: flag, seed } = options;
  const algorithm = ALGORITHMS[flag];
  const trainRows = dataset.rows.slice(0, cut);
  const trainLabels = dataset.labels.slice(0, cut);
  const validation = dataset.rows.slice(cut);
  const truth = dataset.labels.slice(cut);
  const name = options.name;
  const meta = { name, version: options.version };

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
    // validation rows), so the validation metrics stay those of unseen data. When the first
    // seven eighths hold one class only (the checks ask both classes of the whole window), the
    // trees are fitted on the whole window, without early stopping.
    let stop = Math.floor(cut * (7 / 8));
    let positives = 0;
    for (let i = 0; i < stop; i++) positives += trainLabels[i]!;
    if (positives === 0 || positives === stop) stop = cut;
    const settings = options.trees ?? TREE_DEFAULTS;
    const result = trainGradientBoosting(trainRows.slice(0, stop), trainLabels.slice(0, stop), {
      featureNames: dataset.features,
      seed,
      ...settings,
      ...(stop < cut ? { validation: { rows: trainRows.slice(stop), labels: trainLabels.slice(stop) } } : {}),
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
        early_stopping_log_loss: stop < cut ? result.validationLogLoss[model.trees.length - 1] : null,
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

  const championComparison =
    options.championDir === undefined
      ? undefined
      : await compareWithChampion(options.championDir).catch((error: unknown) => {
          throw new Error(`--champion ${options.championDir}: ${(error as Error).message}`);
        });

  // The reference the monitor compares live traffic with: the training inputs and their scores, a column at a time.
  const trainScores = trainRows.map((row) => trained.predict(row));
  const columnOf = (name: string) => {
    const i = dataset.features.indexOf(name);
    return i < 0 ? trainScores : trainRows.map((row) => row[i]!);
  };
  const profile = buildProfileOfColumns(trainRows.length, columnOf, [
    // The score's bins reach into the decision region: its deciles alone all lie below it for a rare positive class.
    scoreFeature('score', THRESHOLD),
    // A category is its index in the vocabulary: profiled as categories (chi-square/PSI drift), not on bins.
    ...dataset.features.map((feature) => ({
      name: feature,
      kind: dataset.featureTypes[feature]?.type === 'category' ? ('categorical' as const) : ('numeric' as const),
    })),
  ]);
  const manifest: TrainedManifest = {
    name,
    version: options.version,
    format: 'onnx',
    file: 'model.onnx',
    sha256: createHash('sha256').update(trained.bytes).digest('hex'),
    input: 'features',
    output: 'score',
    features: dataset.features,
    ...(Object.keys(dataset.featureTypes).length === 0 ? {} : { feature_types: dataset.featureTypes }),
    ...(dataset.defaults === undefined ? {} : { defaults: dataset.defaults }),
    threshold: THRESHOLD,
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
  return { manifest, bytes: trained.bytes, metrics, comparison: championComparison, onnxDiff, trainRows: cut };

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
}

/** A version directory not written: it holds something else, or this very version and replacing was not asked for. */
export class VersionDirectoryRefused extends Error {
  override name = 'VersionDirectoryRefused';
}

/** What a version directory's path holds before a version is written there. */
export type VersionDirectoryState = { kind: 'new' } | { kind: 'replace'; file: string };

/**
 * Checks that a version may be written to `dir`: nothing there (or an empty folder), or the
 * same model and version when `replace` is set. A folder of another version, one that is not a
 * version at all, or this version without `replace`, is refused (VersionDirectoryRefused): a
 * registered version is immutable, and a manifest naming another version makes the registry
 * list the folder as damaged.
 */
export async function checkVersionDirectory(
  dir: string,
  target: { name: string; version: string },
  replace: boolean,
): Promise<VersionDirectoryState> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    if (error.code === 'ENOTDIR') throw new VersionDirectoryRefused(`${dir} is a file, not a model version directory: not written`);
    throw error;
  });
  if (entries === null || entries.length === 0) return { kind: 'new' };
  if (!entries.includes('manifest.json'))
    throw new VersionDirectoryRefused(`${dir} is not empty and holds no model version (no manifest.json): not written there`);
  let held: { name?: unknown; version?: unknown; file?: unknown };
  try {
    held = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as typeof held;
  } catch (error) {
    throw new VersionDirectoryRefused(`${dir}/manifest.json is not a model manifest (${(error as Error).message}): not replaced`);
  }
  const wanted = `${target.name} version ${target.version}`;
  if (held?.name !== target.name || held.version !== target.version)
    throw new VersionDirectoryRefused(
      `${dir} holds ${String(held?.name)} version ${String(held?.version)}, not ${wanted}: not replaced (write ${wanted} to a folder of its own)`,
    );
  if (!replace) throw new VersionDirectoryRefused(`${dir} already holds ${wanted}: not replaced (--force replaces it)`);
  return { kind: 'replace', file: typeof held.file === 'string' ? held.file : '' };
}

/**
 * Writes a version directory (model.onnx and manifest.json), checked first by
 * checkVersionDirectory. The files are written and synced in a staging folder beside it
 * (dot-named: the registry skips it), then moved in by renames, each atomic, so that a
 * crash at any point leaves the old version or the new one, never none:
 *
 * - a new directory is the staging folder renamed into place;
 * - a replaced one (`replace`) is changed in place: the new model file goes in under a
 *   second name, a manifest naming that file takes the old manifest's place (the new version,
 *   whole), the model file takes its own name, and the final manifest takes its place.
 *
 * What remains: a crash leaves the staging folder (and, replacing, the second copy of the
 * model file) behind, and a reader that reads the manifest before one step and the model
 * file after it sees their sha256 differ and fails that load (the registry never serves a mix).
 * `onStep` is called after each move (tests interrupt the write there).
 */
export async function writeModelVersion(
  outDir: string,
  version: Pick<TrainedVersion, 'manifest' | 'bytes'>,
  options: { replace?: boolean; onStep?: (step: string) => void | Promise<void> } = {},
): Promise<void> {
  const { manifest, bytes } = version;
  const state = await checkVersionDirectory(outDir, manifest, options.replace ?? false);
  const staged = join(dirname(outDir), `.${basename(outDir)}.writing-${process.pid}`);
  const step = async (name: string) => options.onStep?.(name);
  await mkdir(dirname(outDir), { recursive: true });
  try {
    await rm(staged, { recursive: true, force: true });
    await mkdir(staged);
    await writeSynced(join(staged, manifest.file), bytes);
    await writeSynced(join(staged, 'manifest.json'), manifestText(manifest));
    if (state.kind === 'new') {
      // Onto nothing or an empty folder; a folder filled meanwhile fails the rename (ENOTEMPTY).
      await rename(staged, outDir);
      await step('moved in');
      return;
    }
    const second = `${manifest.file}.replacing`;
    await writeSynced(join(staged, second), bytes);
    await writeSynced(join(staged, 'manifest-second.json'), manifestText({ ...manifest, file: second }));
    await rename(join(staged, second), join(outDir, second));
    await step('new model file beside the old version');
    await rename(join(staged, 'manifest-second.json'), join(outDir, 'manifest.json'));
    await step('new version, under the second name');
    await rename(join(staged, manifest.file), join(outDir, manifest.file));
    await step('new model file under its name');
    await rename(join(staged, 'manifest.json'), join(outDir, 'manifest.json'));
    await step('new version');
    await rm(join(outDir, second), { force: true });
    // The old version's model file, when it had another name (a version registered by hand).
    if (state.file !== manifest.file && state.file !== second && /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(state.file))
      await rm(join(outDir, state.file), { force: true });
    await rm(staged, { recursive: true, force: true });
  } catch (error) {
    await rm(staged, { recursive: true, force: true });
    throw new Error(`could not write the model version to ${outDir}: ${(error as Error).message}`);
  }
}

function manifestText(manifest: TrainedManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

/** Writes a file and syncs it, so that a rename after it never exposes a file whose data a power loss took. */
async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The challenger/champion table the trainer prints. */
export function comparisonLines(c: ChampionComparison): string[] {
  const label = `${String(c.champion_model.name)} v${String(c.champion_model.version)}`;
  const lines = [`same ${c.rows} validation rows      challenger   champion (${label})   difference`];
  for (const key of ['auc', 'log_loss', 'ece'] as const) {
    lines.push(
      `  ${key.padEnd(30)} ${c.challenger[key].toFixed(4).padStart(10)}   ${c.champion[key].toFixed(4).padStart(10)}   ${c.difference[key] >= 0 ? '+' : ''}${c.difference[key].toFixed(4)}`,
    );
  }
  if (c.champion_trained_on_validation_window === true) {
    lines.push(`warning: the champion was trained on events of this validation window; the comparison flatters it`);
  }
  return lines;
}

function packRows(list: readonly Float32Array[], w: number): Float32Array {
  const data = new Float32Array(list.length * w);
  list.forEach((row, i) => data.set(row, i * w));
  return data;
}

function snakeCase(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]));
}
