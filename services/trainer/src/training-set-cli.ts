/**
 * Builds a training set as of a cut-off time (docs/training-data.md):
 *
 *   npm run training-set -w services/trainer -- log --model fraud_detector/1 \
 *     (--predictions FILE | --predictions-topic TOPIC) (--labels FILE | --labels-topic TOPIC) --cutoff TIME [options]
 *   npm run training-set -w services/trainer -- backfill --model fraud_detector/1 \
 *     (--events [SOURCE=]FILE | --events-topic [SOURCE=]TOPIC)... (--labels FILE | --labels-topic TOPIC) --cutoff TIME [options]
 *
 * Options: --unlabelled drop|negative, --maturity DURATION, --validation-fraction F |
 * --validation-from TIME, --variant NAME|all and --served-version V (log), --allowed-lateness
 * DURATION (backfill), --format json|ndjson, --out FILE. Topics are read through the event
 * log of KAFKA_BROKERS, from their start to their end when the read began.
 */
import { fraud, outputTarget, writeOutput, parseCommandOptions } from '@tributary/shared';
import { unusableEvents } from '@tributary/features';
import {
  trainingSetFromBackfill,
  trainingSetFromPredictionLog,
  trainingSetNdjson,
  type Built,
  type ModelFeatures,
} from './build-training-set.js';
import {
  cliConfig,
  eventLogOpener,
  exactlyOne,
  fileOrTopic,
  modelDirectory,
  namedValues,
  numberFlag,
  parseDurationFlag,
  parseLatenessFlag,
  parseTimeFlag,
  readManifest,
  registryManifests,
  runCli,
  UsageError,
  userPath,
} from './cli-support.js';
import { InputError, readNdjsonFile, readTopic, type LogInput } from './log-input.js';
import { lateWarnings, replayLines } from './replay-report.js';
import { refuseEmptyInputs, refuseNoTrainingRows, refuseUnreadableInputs, type SetInputs } from './set-checks.js';
import type { LabelPolicy, SplitSpec } from './training-set.js';

const USAGE = 'usage: training-set log|backfill --model NAME/VERSION|DIR --cutoff TIME ... (see docs/training-data.md)';
/** The options of one mode only: given in the other, they would be silently ignored. */
const MODE_OPTIONS = {
  log: ['predictions', 'predictions-topic', 'variant', 'served-version'],
  backfill: ['events', 'events-topic', 'allowed-lateness'],
} as const;

async function main(): Promise<void> {
  const { values, positionals } = parseCommandOptions({
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      predictions: { type: 'string' },
      'predictions-topic': { type: 'string' },
      labels: { type: 'string' },
      'labels-topic': { type: 'string' },
      events: { type: 'string', multiple: true },
      'events-topic': { type: 'string', multiple: true },
      cutoff: { type: 'string' },
      unlabelled: { type: 'string', default: 'drop' },
      maturity: { type: 'string' },
      'validation-fraction': { type: 'string' },
      'validation-from': { type: 'string' },
      variant: { type: 'string' },
      'served-version': { type: 'string', multiple: true },
      'allowed-lateness': { type: 'string' },
      format: { type: 'string', default: 'json' },
      out: { type: 'string' },
    },
  });
  // One instant for `now` and for judging the event times of files (which have no log timestamp).
  const now = Date.now();
  // Every option is checked before anything is read or built.
  const mode = positionals[0];
  if (positionals.length !== 1 || (mode !== 'log' && mode !== 'backfill')) throw new UsageError(USAGE);
  if (!values.model) throw new UsageError('--model NAME/VERSION (or a version directory) is required');
  if (!values.cutoff)
    throw new UsageError('--cutoff TIME is required (epoch ms, RFC 3339, or now): only labels that arrived by then are used');
  if (values.format !== 'json' && values.format !== 'ndjson') throw new UsageError('--format must be json or ndjson');
  if (values.unlabelled !== 'drop' && values.unlabelled !== 'negative') throw new UsageError('--unlabelled must be drop or negative');
  if (values.unlabelled === 'negative' && values.maturity === undefined)
    throw new UsageError('--unlabelled negative needs --maturity DURATION: how long a label may take to arrive (e.g. 30d for chargebacks)');
  const policy: LabelPolicy = {
    cutoff: parseTimeFlag(values.cutoff, '--cutoff', now),
    unlabelled: values.unlabelled,
    maturityMs: values.maturity === undefined ? 0 : parseDurationFlag(values.maturity, '--maturity', true),
  };
  if (values['validation-fraction'] !== undefined && values['validation-from'] !== undefined)
    throw new UsageError('give --validation-fraction or --validation-from, not both');
  let split: SplitSpec = { validationFraction: 0.2 };
  if (values['validation-from'] !== undefined) split = { at: parseTimeFlag(values['validation-from'], '--validation-from', now) };
  else if (values['validation-fraction'] !== undefined) {
    const fraction = numberFlag(values['validation-fraction'], '--validation-fraction');
    if (!(fraction > 0 && fraction < 1)) throw new UsageError('--validation-fraction must be a number between 0 and 1 (exclusive)');
    split = { validationFraction: fraction };
  }
  exactlyOne(values.labels, values['labels-topic'], ['--labels', '--labels-topic']);
  const config = cliConfig();
  const example = fraud.fraudExample({
    transactions: config.TOPIC_TRANSACTIONS,
    labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS,
  });
  const rowsSource = example.sources[0]!.name;
  let eventFiles = new Map<string, string>();
  let eventTopics = new Map<string, string>();
  let allowedLatenessMs = config.ALLOWED_LATENESS;
  for (const [other, options] of Object.entries(MODE_OPTIONS))
    for (const option of options)
      if (other !== mode && values[option] !== undefined)
        throw new UsageError(`--${option} is for the ${other} mode, not the ${mode} mode`);
  const variant = values.variant ?? 'champion';
  if (mode === 'log') exactlyOne(values.predictions, values['predictions-topic'], ['--predictions', '--predictions-topic']);
  else {
    const sources = example.sources.map((s) => s.name);
    eventFiles = namedValues(values.events ?? [], sources, '--events');
    eventTopics = namedValues(values['events-topic'] ?? [], sources, '--events-topic');
    for (const name of eventTopics.keys())
      if (eventFiles.has(name)) throw new UsageError(`source "${name}": give --events or --events-topic, not both`);
    if (!eventFiles.has(rowsSource) && !eventTopics.has(rowsSource))
      throw new UsageError(`the backfill mode needs the ${rowsSource} events: --events FILE or --events-topic TOPIC`);
    if (values['allowed-lateness'] !== undefined) allowedLatenessMs = parseLatenessFlag(values['allowed-lateness']);
  }
  const inputs = [
    { flag: '--labels', file: values.labels },
    { flag: '--predictions', file: values.predictions },
    ...[...eventFiles.values()].map((file) => ({ flag: '--events', file })),
  ].filter((input): input is { flag: string; file: string } => input.file !== undefined);
  const target = outputTarget(values.out, inputs);
  const manifest = await readManifest(modelDirectory(values.model, config));
  const model: ModelFeatures = {
    name: manifest.name,
    version: manifest.version,
    features: manifest.features,
    defaults: manifest.defaults,
    feature_types: manifest.feature_types,
  };

  const kafka = eventLogOpener(config);
  try {
    const labels = await fileOrTopic(values.labels, values['labels-topic'], ['--labels', '--labels-topic'], kafka.open);
    const read: SetInputs = { labels };
    let built: Built;
    if (mode === 'log') {
      const predictions = await fileOrTopic(
        values.predictions,
        values['predictions-topic'],
        ['--predictions', '--predictions-topic'],
        kafka.open,
      );
      read.predictions = predictions;
      // Each served version's values are taken as this model encodes them (its registry manifest says how it served them).
      const manifests = await registryManifests(config, model.name);
      built = await trainingSetFromPredictionLog({
        predictions,
        labels,
        model,
        policy,
        split,
        variant,
        versions: values['served-version'],
        servedVersions: { catalog: example.catalog, manifestOf: (version) => manifests.get(version) ?? null },
      });
    } else {
      const events = new Map<string, LogInput>();
      for (const [name, file] of eventFiles) events.set(name, await readNdjsonFile(userPath(file), file));
      for (const [name, topic] of eventTopics) events.set(name, await readTopic(await kafka.open('--events-topic'), topic));
      read.events = events.get(rowsSource);
      built = await trainingSetFromBackfill({
        events,
        rowsSource,
        labels,
        model,
        policy,
        split,
        sources: example.sources,
        groups: example.groups,
        catalog: example.catalog,
        requestFields: Object.keys(fraud.FraudRequestFieldsSchema.properties),
        allowedLatenessMs,
        readAt: now,
      });
    }
    // An input with no records, or none that could be read, is the wrong input.
    const { stats } = built.set;
    refuseEmptyInputs(built, read);
    refuseUnreadableInputs(built, read);
    // Records read but none selected: a typo in --model, --variant or --served-version, not an empty log.
    const served = stats.served;
    const leftOut = served
      ? served.other_model + served.other_version + served.other_variant + served.other_encoding + served.unknown_version
      : 0;
    if (served && served.records > 0 && leftOut === served.records)
      throw new InputError(
        `none of the ${served.records} prediction-log records is of ${model.name}${values['served-version'] ? ` version ${values['served-version'].join(', ')}` : ''}` +
          ` served as ${variant} (${served.other_model} of other models, ${served.other_version} of other versions, ` +
          `${served.other_variant} of other variants; ${served.other_encoding + served.unknown_version} of versions that encode its features otherwise or are not in the registry): ` +
          `check --model, --served-version and --variant`,
      );
    // A source none of whose events was applied leaves its features at their defaults in every row.
    for (const replay of stats.replay ?? []) {
      const unusable = unusableEvents(replay, `events of source "${replay.source}"`);
      if (unusable !== null) throw new InputError(unusable);
    }
    refuseNoTrainingRows(built.set);
    // The summary first: nothing is written when it cannot be made.
    const report = summary(built);
    await writeOutput(values.format === 'json' ? `${jsonDocument(built.set)}\n` : trainingSetNdjson(built.set), target);
    process.stderr.write(report);
    for (const warning of lateWarnings('training-set', stats.replay ?? [])) process.stderr.write(warning);
  } finally {
    await kafka.close();
  }
}

function summary({ set, rejected }: Built): string {
  const { join } = set.stats;
  const lines = [
    `training-set: ${set.rows.length} rows from the ${set.source === 'prediction_log' ? 'prediction log' : 'backfill'} ` +
      `(${set.split.train} train, ${set.split.validation} validation${set.split.at === null ? '' : ` from ${new Date(set.split.at).toISOString()}`}), ` +
      `cut-off ${new Date(set.cutoff).toISOString()}`,
    `  rows: ${join.labelled} labelled, ${join.matured_negative} unlabelled taken as negative; left out: ${join.after_cutoff} after the cut-off, ` +
      `${join.immature} younger than the maturity window, ${join.unlabelled_dropped} without a label`,
    `  labels: ${join.labels_after_cutoff} arrived after the cut-off (not used), ${join.labels_superseded} replaced by a later one, ${join.labels_unmatched} for no row`,
  ];
  if (set.stats.served) {
    const s = set.stats.served;
    lines.push(
      `  predictions: ${s.records} records; skipped ${s.other_model} of other models, ${s.other_version} of other versions, ` +
        `${s.other_variant} of other variants, ${s.missing_features} without the model's features, ${s.duplicates} duplicate request ids`,
    );
    lines.push(
      `  encodings: ${s.defaults_replaced} values served as another version's default replaced by v${set.model.version}'s; left out ` +
        `${s.other_encoding} records of versions encoding the features otherwise, ${s.unknown_version} of versions not in the registry`,
    );
    for (const [version, why] of Object.entries(s.versions_left_out ?? {})) lines.push(`    version ${version} left out: ${why}`);
  }
  if (set.stats.events) lines.push(`  events: ${set.stats.events.events} records, ${set.stats.events.duplicates} duplicate event ids`);
  lines.push(...replayLines(set.stats.replay ?? []));
  if (rejected.length > 0) {
    lines.push(`  set aside ${rejected.length} record(s) that could not be read:`);
    for (const r of rejected.slice(0, 10)) lines.push(`    ${r.where}: ${r.detail}`);
    if (rejected.length > 10) lines.push(`    ... and ${rejected.length - 10} more`);
  }
  return `${lines.join('\n')}\n`;
}

/** The set as one JSON document (what `npm run train -- --training-set` reads), or why it cannot be one. */
function jsonDocument(set: Built['set']): string {
  try {
    return JSON.stringify(set);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new InputError(
      `the training set (${set.rows.length} rows) is too large for one JSON document (Node's strings hold at most 512 MB): write it as NDJSON (--format ndjson), one row per line`,
    );
  }
}

runCli('training-set', main);
