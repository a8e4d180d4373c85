/**
 * Trains the example's fraud model and writes a model version directory:
 *   npm run train -w services/trainer -- [--algorithm logistic_regression|gbt] [--rows 60000] [--seed 1]
 *     [--version 1] [--out DIR] [--force] [--champion models/fraud_detector/1] [--training-set set.json]
 *     [--trees 300] [--learning-rate 0.1] [--max-leaves 31] [--max-depth 6]   (gbt only)
 * The version goes to `--out`, by default `<MODEL_REGISTRY_DIR>/<name>/<version>` of the model
 * trained (the training set's, else fraud_detector). A folder holding another version is never
 * written over; the same version is replaced only with `--force`.
 * The model (a logistic regression by default, or gradient-boosted trees) is exported to ONNX
 * with the project's own builder; `manifest.json` records its features, sha256, algorithm and
 * hyperparameters, validation metrics (AUC, log loss, calibration) on the most recent fifth
 * of the rows, and the reference profile the monitor needs. With `--champion <version dir>`
 * the serving champion scores the same validation rows through onnxruntime, and both
 * models' metrics are printed and recorded side by side.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseCommandOptions } from '@tributary/shared';
import type { TrainingSet } from './build-training-set.js';
import { checkTreeFlags, cliConfig, numberFlag, runCli, UsageError } from './cli-support.js';
import { buildDataset, type Dataset } from './dataset.js';
import {
  ALGORITHMS,
  checkTrainingSet,
  checkVersionDirectory,
  comparisonLines,
  datasetOf,
  trainModel,
  writeModelVersion,
  type AlgorithmFlag,
} from './train-model.js';

/** The registry's rule for a model's and a version's name (a folder name; no path). */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** The gradient-boosted trees' settings when not given. */
const TREE_DEFAULTS = { trees: '300', 'learning-rate': '0.1', 'max-leaves': '31', 'max-depth': '6' } as const;

runCli('train', main);

async function main(): Promise<void> {
  const { values } = parseCommandOptions({
    options: {
      algorithm: { type: 'string', default: 'logistic_regression' },
      rows: { type: 'string', default: '60000' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      version: { type: 'string', default: '1' },
      // Replace the version at --out when it holds this very model and version (rebuilding it).
      force: { type: 'boolean', default: false },
      champion: { type: 'string' },
      // A training set from `npm run training-set` (JSON format): its rows, labels and time split.
      'training-set': { type: 'string' },
      // For gbt only (TREE_DEFAULTS without them).
      trees: { type: 'string' },
      'learning-rate': { type: 'string' },
      'max-leaves': { type: 'string' },
      'max-depth': { type: 'string' },
    },
  });
  const rows = numberFlag(values.rows!, '--rows');
  const seed = numberFlag(values.seed!, '--seed');
  if (!Number.isInteger(rows) || rows < 1000 || rows > 10_000_000) throw new UsageError('--rows must be an integer from 1000 to 10000000');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
  if (!Object.hasOwn(ALGORITHMS, values.algorithm!))
    throw new UsageError(`--algorithm must be one of ${Object.keys(ALGORITHMS).join(', ')}, got ${values.algorithm}`);
  for (const flag of Object.keys(TREE_DEFAULTS) as (keyof typeof TREE_DEFAULTS)[]) {
    if (values.algorithm !== 'gbt' && values[flag] !== undefined) throw new UsageError(`--${flag} is only for --algorithm gbt`);
  }
  if (!SAFE_NAME.test(values.version!))
    throw new UsageError(
      `--version must be letters, digits, "_", "." or "-" (not starting with "." or "-"), got ${JSON.stringify(values.version)}`,
    );
  const algorithm = values.algorithm as AlgorithmFlag;
  const trees =
    algorithm === 'gbt'
      ? {
          trees: positiveNumber('trees'),
          learningRate: positiveNumber('learning-rate'),
          maxLeaves: positiveNumber('max-leaves'),
          maxDepth: positiveNumber('max-depth'),
        }
      : undefined;
  // Out of range (a learning rate above 1, one leaf, a fractional number of trees): said now, as a wrong option,
  // not once the data is built.
  if (trees) checkTreeFlags(trees);
  const version = values.version!;
  // Relative paths are the caller's: `npm run train -w services/trainer` runs in services/trainer.
  const callerDir = process.env.INIT_CWD ?? process.cwd();
  const championDir = values.champion === undefined ? undefined : resolve(callerDir, values.champion);

  const started = performance.now();
  // The set as the dataset, and where it came from: its rows are not kept beside the dataset's.
  const fromSet =
    values['training-set'] === undefined ? null : datasetOf(await readTrainingSet(resolve(callerDir, values['training-set'])));
  const name = fromSet?.origin.model.name ?? 'fraud_detector';
  if (!SAFE_NAME.test(name)) throw new Error(`--training-set: the model name ${JSON.stringify(name)} cannot name a registry folder`);
  // Where the version goes, checked before the work: its own folder in the registry unless told.
  const registryDir = cliConfig().MODEL_REGISTRY_DIR;
  const outDir = values.out === undefined ? join(registryDir, name, version) : resolve(callerDir, values.out);
  await checkVersionDirectory(outDir, { name, version }, values.force!);
  if (dirname(outDir) === join(registryDir, name) && basename(outDir) !== version)
    throw new UsageError(`--out ${outDir} is the registry's folder of version ${basename(outDir)}, not of version ${version}`);
  const { dataset, cut }: { dataset: Dataset; cut: number } = fromSet
    ? fromSet
    : await buildDataset({ rows, seed, users: 2000, fraudRate: 0.03, ratePerSecond: 20, start: Date.UTC(2026, 0, 1) }).then((d) => ({
        dataset: d,
        // Split by time: train on the past, validate on the most recent fifth.
        cut: Math.floor(d.rows.length * 0.8),
      }));
  const trained = await trainModel({
    dataset,
    cut,
    trainingSet: fromSet?.origin ?? null,
    algorithm,
    name,
    version,
    seed,
    trees,
    championDir,
  });
  await writeModelVersion(outDir, trained, { replace: values.force! });
  const { metrics } = trained;
  console.log(
    `trained ${name} v${version} (${trained.manifest.training.algorithm}) on ${cut} rows in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
      `validation AUC ${metrics.auc.toFixed(4)}, log loss ${metrics.log_loss.toFixed(4)}, ECE ${metrics.ece.toFixed(4)} ` +
      `(${metrics.positives}/${metrics.rows} positives); ONNX max abs diff ${trained.onnxDiff.toExponential(1)}; wrote ${outDir}`,
  );
  if (trained.comparison) for (const line of comparisonLines(trained.comparison)) console.log(line);

  function positiveNumber(flag: keyof typeof TREE_DEFAULTS): number {
    const v = numberFlag(values[flag] ?? TREE_DEFAULTS[flag], `--${flag}`);
    if (!(Number.isFinite(v) && v > 0)) throw new UsageError(`--${flag} must be a positive number, got ${String(values[flag])}`);
    return v;
  }
}

/**
 * Reads a JSON training set and checks it can be trained on (two classes on each side of the
 * split). The set is one JSON document, so it is read whole, then parsed (its text let go):
 * training needs every row in memory anyway. Its text cannot exceed the largest string Node
 * makes (512 MB).
 */
async function readTrainingSet(file: string): Promise<TrainingSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    // ERR_STRING_TOO_LONG (or "Invalid string length"): the file is more text than one string holds.
    if (error instanceof RangeError || (error as { code?: string }).code === 'ERR_STRING_TOO_LONG')
      throw new Error(`--training-set ${file}: too large to read as one JSON document (over 512 MB of text); build a set of fewer rows`);
    throw new Error(`--training-set ${file}: cannot read it (${(error as Error).message})`);
  }
  let set: TrainingSet;
  try {
    set = JSON.parse(text) as TrainingSet;
  } catch (error) {
    throw new Error(
      `--training-set ${file}: not a JSON training set (${(error as Error).message}); build one with npm run training-set -- … --format json`,
    );
  }
  try {
    checkTrainingSet(set);
  } catch (error) {
    throw new Error(`--training-set ${file}: ${(error as Error).message}`);
  }
  return set;
}
