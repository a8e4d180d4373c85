/**
 * One turn of the continual-learning loop: build a training set from the prediction log
 * joined with labels as of a cut-off, train the next version, compare it with the serving
 * champion on the same validation rows, register it, and start it as a shadow. Each step
 * reports its figures through `report`; a set that cannot be trained on, or a challenger
 * worse than the champion by more than the allowed margin, is refused before anything is
 * registered.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  describeRollout,
  MAX_ROLLOUT_VERSIONS,
  readModelFiles,
  type ModelManifest,
  type ModelRegistry,
  type Routing,
} from '@tributary/inference';
import { fraud, type FeatureCatalog } from '@tributary/shared';
import { trainingSetFromPredictionLog, type TrainingSet } from './build-training-set.js';
import type { LogInput } from './log-input.js';
import { refuseEmptyInputs } from './set-checks.js';
import {
  checkTrainingSet,
  checkVersionDirectory,
  comparisonLines,
  datasetOf,
  trainModel,
  writeModelVersion,
  type AlgorithmFlag,
  type ChampionComparison,
  type TreeSettings,
} from './train-model.js';
import type { LabelPolicy, SplitSpec } from './training-set.js';

export type RefusalReason = 'too_small' | 'one_class' | 'worse_than_champion';

/** The loop stopped on purpose: nothing was registered. */
export class RetrainRefused extends Error {
  override name = 'RetrainRefused';
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

export interface RetrainOptions {
  model: string;
  registry: ModelRegistry;
  predictions: LogInput;
  labels: LogInput;
  policy: LabelPolicy;
  split?: SplitSpec;
  algorithm?: AlgorithmFlag;
  trees?: TreeSettings;
  seed?: number;
  /** The challenger's AUC minus the champion's must be at least this (negative: a worse one is allowed by that much). */
  minAucGain?: number;
  /** Start the new version as a shadow (default true). */
  shadow?: boolean;
  /** Also write the version directory here (a folder of another version is refused). */
  out?: string;
  /** Replace the version at `out` when it holds this very version (default false: refused). */
  replaceOut?: boolean;
  by: string;
  reason?: string;
  /** The feature catalogue the served versions' encodings are planned with (default: the example's). */
  catalog?: FeatureCatalog;
  /** Where each step's figures go (default: nowhere). */
  report?: (line: string) => void;
}

export interface RetrainResult {
  champion: string;
  version: string;
  set: { rows: number; positives: number; train: number; validation: number; seconds: number };
  training: { seconds: number; algorithm: string };
  comparison: ChampionComparison;
  routing: Routing;
}

/** The version after the highest numeric one registered. */
export async function nextVersion(registry: ModelRegistry, model: string): Promise<string> {
  // Damaged folders hold their number too: a version is never written over one.
  const { versions, damaged } = await registry.inventory(model);
  const numeric = [...versions, ...damaged].map((v) => Number(v.version)).filter((v) => Number.isInteger(v));
  return String(Math.max(0, ...numeric) + 1);
}

export async function retrain(options: RetrainOptions): Promise<RetrainResult> {
  const report = options.report ?? (() => {});
  const { registry, model } = options;
  const minAucGain = options.minAucGain ?? 0;
  // Who and why go to the registry's audit log: never blank.
  if (!options.by.trim()) throw new RangeError('retrain: `by` (who retrains) cannot be blank');
  if (options.reason !== undefined && !options.reason.trim())
    throw new RangeError('retrain: `reason` cannot be blank (leave it out for the default)');

  // 1. The champion, from the routing.
  const before = await registry.ensureRouting(model, options.by);
  const champion = await registry.version(model, before.champion);
  const championDir = join(registry.root, model, before.champion);
  report(`champion: ${model} v${before.champion} (${describeRollout(before)})`);

  // 2. The training set, from the champion's served predictions and the labels by the cut-off.
  const { dataset, cut, origin, summary } = await championTrainingSet(options, before.champion, champion.manifest, report);

  // 3. Train the next version, and score the champion on the same validation rows.
  const version = await nextVersion(registry, model);
  if (options.out !== undefined) await checkVersionDirectory(options.out, { name: model, version }, options.replaceOut ?? false);
  const algorithm = options.algorithm ?? 'gbt';
  const started = performance.now();
  const trained = await trainModel({
    dataset,
    cut,
    trainingSet: origin,
    algorithm,
    name: model,
    version,
    seed: options.seed ?? 1,
    trees: options.trees,
    championDir,
  });
  const trainSeconds = (performance.now() - started) / 1000;
  const comparison = trained.comparison!;
  report(
    `trained ${model} v${version} (${trained.manifest.training.algorithm}) on ${cut} rows in ${trainSeconds.toFixed(1)} s; ` +
      `ONNX max abs diff ${trained.onnxDiff.toExponential(1)}`,
  );
  for (const line of comparisonLines(comparison)) report(line);

  // 4. Evaluate: refuse a challenger worse than the champion by more than the margin.
  if (!(comparison.difference.auc >= minAucGain)) {
    throw new RetrainRefused(
      'worse_than_champion',
      `the challenger's AUC ${comparison.challenger.auc.toFixed(4)} is ${comparison.difference.auc >= 0 ? '+' : ''}${comparison.difference.auc.toFixed(4)} ` +
        `against the champion's ${comparison.champion.auc.toFixed(4)} on the same ${comparison.rows} validation rows; ` +
        `at least ${minAucGain >= 0 ? '+' : ''}${minAucGain} is required (--min-auc-gain): nothing registered`,
    );
  }

  // 5. Register (the registry checks the version fully), through a version directory.
  const dir = options.out ?? (await mkdtemp(join(tmpdir(), 'tributary-retrain-')));
  try {
    await writeModelVersion(dir, trained, { replace: options.replaceOut ?? false });
    const read = await readModelFiles(dir);
    await registry.register(read.manifest, read.bytes);
  } finally {
    if (options.out === undefined) await rm(dir, { recursive: true, force: true });
  }
  report(`registered ${model} v${version}`);

  // 6. Start it as a shadow: scored on every request, logged, never returned.
  let routing = await registry.ensureRouting(model, options.by);
  if (options.shadow ?? true) {
    // The newest shadows, up to the most a routing takes: the oldest retrained version leaves the shadows first.
    const shadows = [...(routing.shadows ?? []).filter((v) => v !== version), version].slice(-MAX_ROLLOUT_VERSIONS);
    routing = await registry.rollout(
      model,
      routing.policy ?? { kind: 'champion' },
      shadows,
      options.by,
      options.reason ?? `retrained on the prediction log as of ${new Date(origin.cutoff).toISOString()}: v${version} in shadow`,
    );
  }
  report(`routing: ${describeRollout(routing)} (revision ${routing.revision})`);
  return {
    champion: before.champion,
    version,
    set: summary,
    training: { seconds: trainSeconds, algorithm: String(trained.manifest.training.algorithm) },
    comparison,
    routing,
  };
}

/**
 * Step 2: the training set of the champion's served predictions joined with the labels by the
 * cut-off, reported and checked (refused when it cannot be trained on), as the trainer's dataset:
 * the set itself is let go, so that its rows are not held twice while the model trains.
 */
async function championTrainingSet(
  options: RetrainOptions,
  championVersion: string,
  champion: ModelManifest,
  report: (line: string) => void,
): Promise<ReturnType<typeof datasetOf> & { summary: RetrainResult['set'] }> {
  const { registry, model } = options;
  const started = performance.now();
  const manifests = new Map<string, ModelManifest>();
  for (const { version } of (await registry.inventory(model)).versions)
    manifests.set(version, (await registry.version(model, version)).manifest);
  const built = await trainingSetFromPredictionLog({
    predictions: options.predictions,
    labels: options.labels,
    model: {
      name: model,
      version: championVersion,
      features: champion.features,
      defaults: champion.defaults,
      feature_types: champion.feature_types,
    },
    policy: options.policy,
    split: options.split ?? { validationFraction: 0.2 },
    variant: 'champion',
    // Predictions an earlier champion served are taken as this one encodes them.
    servedVersions: { catalog: options.catalog ?? fraud.fraudExample().catalog, manifestOf: (version) => manifests.get(version) ?? null },
  });
  // An empty input is the wrong file or topic, not a set too small.
  refuseEmptyInputs(built, { predictions: options.predictions, labels: options.labels });
  const { set } = built;
  const seconds = (performance.now() - started) / 1000;
  const positives = set.labels.reduce<number>((n, l) => n + l, 0);
  const j = set.stats.join;
  report(
    `training set: ${set.rows.length} rows (${set.split.train} train, ${set.split.validation} validation), ${positives} positives, ` +
      `cut-off ${new Date(set.cutoff).toISOString()}, in ${seconds.toFixed(2)} s; left out ${j.unlabelled_dropped} without a label, ` +
      `${j.immature} immature, ${j.after_cutoff} after the cut-off`,
  );
  const served = set.stats.served!;
  if (served.defaults_replaced + served.other_encoding + served.unknown_version > 0)
    report(
      `encodings: ${served.defaults_replaced} values served as an earlier champion's default replaced by v${championVersion}'s; ` +
        `left out ${served.other_encoding + served.unknown_version} predictions of versions encoding the features otherwise or not in the registry` +
        Object.entries(served.versions_left_out ?? {})
          .map(([version, why]) => ` (version ${version}: ${why})`)
          .join(''),
    );
  refuseUntrainable(set, positives);
  const summary = { rows: set.rows.length, positives, train: set.split.train, validation: set.split.validation, seconds };
  return { ...datasetOf(set), summary };
}

function refuseUntrainable(set: TrainingSet, positives: number): void {
  const { train, validation } = set.split;
  const classes = (from: number, to: number) => new Set(set.labels.slice(from, to)).size;
  if (set.rows.length > 0 && (positives === 0 || positives === set.rows.length))
    throw new RetrainRefused(
      'one_class',
      `the training set has one class only (${positives} positives in ${set.rows.length} rows): nothing to learn; nothing registered`,
    );
  if (train < 100 || validation < 20)
    throw new RetrainRefused(
      'too_small',
      `the training set is too small: ${train} training and ${validation} validation rows (at least 100 and 20), ` +
        `from ${set.stats.served?.records ?? 0} prediction-log records (${set.stats.records_rejected} could not be read) ` +
        `and ${set.stats.join.labelled} labelled; nothing registered`,
    );
  if (classes(0, train) < 2 || classes(train, set.rows.length) < 2)
    throw new RetrainRefused(
      'one_class',
      `one side of the split has one class only (train ${classes(0, train)}, validation ${classes(train, set.rows.length)}); nothing registered`,
    );
  checkTrainingSet(set);
}
