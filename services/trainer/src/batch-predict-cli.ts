/**
 * Scores a file of prediction requests offline (docs/training-data.md):
 *
 *   npm run batch-predict -w services/trainer -- --model fraud_detector/1 --requests requests.ndjson \
 *     (--events [SOURCE=]FILE... | --events-topic [SOURCE=]TOPIC... | --online) [--at TIME] [--on-error fail|skip] [--out scores.ndjson]
 *
 * A request is a POST /v1/predict body with an optional `at` (NDJSON, or CSV with a header:
 * `.csv` files or --format csv). With --events/--events-topic the features are those as of
 * each request's `at` (default --at, itself default now), replayed from the events; with
 * --online they are read from the live online store (REDIS_URL) now. Output: one line
 * `{request_id, score, model, version, at}` per request, in input order.
 *
 * A bad request line stops the run before anything is scored (exit 1, each bad line named on
 * stderr); with --on-error skip, bad lines are left out, counted and named, and the rest scored.
 */
import { unusableEvents } from '@tributary/features';
import { loadModel } from '@tributary/inference';
import { createOnlineStore, fraud, outputTarget, planModelFeatures, writeOutput, parseCommandOptions } from '@tributary/shared';
import { parseCsvRequests, parseNdjsonRequests, scoreRequests, type RequestShape } from './batch-predict.js';
import {
  cliConfig,
  eventLogOpener,
  modelDirectory,
  namedValues,
  numberFlag,
  parseLatenessFlag,
  parseTimeFlag,
  readManifest,
  runCli,
  UsageError,
  userPath,
} from './cli-support.js';
import { InputError, openInputFile, readNdjsonFile, readTopic, type LogInput } from './log-input.js';
import { backfillStates, onlineStates, replaySources, type ReplaySummary, type StateSource } from './point-in-time.js';
import { lateWarnings, replayLines } from './replay-report.js';

async function main(): Promise<void> {
  const { values, positionals } = parseCommandOptions({
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      requests: { type: 'string' },
      format: { type: 'string' },
      events: { type: 'string', multiple: true },
      'events-topic': { type: 'string', multiple: true },
      online: { type: 'boolean', default: false },
      at: { type: 'string' },
      'on-error': { type: 'string', default: 'fail' },
      'allowed-lateness': { type: 'string' },
      threads: { type: 'string', default: '1' },
      out: { type: 'string' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values.model) throw new UsageError('--model NAME/VERSION (or a version directory) is required');
  if (!values.requests) throw new UsageError('--requests FILE is required (NDJSON or CSV)');
  const format = values.format ?? (values.requests.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  if (format !== 'ndjson' && format !== 'csv') throw new UsageError('--format must be ndjson or csv');
  if (values['on-error'] !== 'fail' && values['on-error'] !== 'skip') throw new UsageError('--on-error must be fail or skip');
  const replay = (values.events?.length ?? 0) + (values['events-topic']?.length ?? 0) > 0;
  if (replay === values.online)
    throw new UsageError('give the features: --events FILE / --events-topic TOPIC (point in time), or --online (REDIS_URL, now)');
  if (values.online && values.at)
    throw new UsageError('--at needs point-in-time features (--events or --events-topic); --online reads them now');
  const threads = numberFlag(values.threads!, '--threads');
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new UsageError('--threads must be an integer from 1 to 64');
  const allowedLateness = values['allowed-lateness'] === undefined ? undefined : parseLatenessFlag(values['allowed-lateness']);
  const sources = fraud.fraudExample().sources.map((s) => s.name);
  const eventFiles = namedValues(values.events ?? [], sources, '--events');
  const eventTopics = namedValues(values['events-topic'] ?? [], sources, '--events-topic');
  for (const name of eventTopics.keys())
    if (eventFiles.has(name)) throw new UsageError(`source "${name}": give --events or --events-topic, not both`);
  const target = outputTarget(values.out, [
    { flag: '--requests', file: values.requests },
    ...[...eventFiles.values()].map((file) => ({ flag: '--events', file })),
  ]);

  const config = cliConfig();
  if (values.online && !config.REDIS_URL) throw new UsageError('--online reads the online store of REDIS_URL: set it');
  const dir = modelDirectory(values.model, config);
  const manifest = await readManifest(dir);
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const plan = planModelFeatures(manifest, example.catalog);
  const shape: RequestShape = {
    entityTypes: [...new Set(example.groups.flatMap((g) => g.entityFields))],
    requestFields: fraud.FraudRequestFieldsSchema,
    plan,
    model: { name: manifest.name, version: manifest.version },
    defaultAt: values.at !== undefined ? parseTimeFlag(values.at, '--at') : Date.now(),
    allowAt: !values.online,
  };
  const requests = await openInputFile(userPath(values.requests), values.requests);
  const parsed = await (format === 'csv' ? parseCsvRequests : parseNdjsonRequests)(requests, values.requests, shape);
  const named = parsed.rejected.slice(0, 20).map((r) => `  ${r.where}: ${r.detail}`);
  if (parsed.rejected.length > 20) named.push(`  ... and ${parsed.rejected.length - 20} more`);
  if (parsed.rejected.length > 0 && values['on-error'] === 'fail') {
    throw new InputError(
      `${parsed.rejected.length} bad request line(s), nothing scored (--on-error skip scores the others):\n${named.join('\n')}`,
    );
  }
  if (parsed.requests.length === 0 && parsed.rejected.length > 0)
    throw new InputError(`none of the ${parsed.rejected.length} request line(s) could be read, nothing scored:\n${named.join('\n')}`);
  // An empty file is no result either (a wrong file, or one not yet written): exit 1, nothing written.
  if (parsed.requests.length === 0) throw new InputError(`${values.requests}: no request in the file, nothing scored`);

  let replayed: ReplaySummary[] = [];
  const kafka = eventLogOpener(config);
  const store = values.online ? createOnlineStore(config) : null;
  try {
    let states: StateSource;
    if (store) states = onlineStates(store, `the online store (Redis at ${config.REDIS_URL})`);
    else {
      const events = new Map<string, LogInput>();
      for (const [name, file] of eventFiles) events.set(name, await readNdjsonFile(userPath(file), file));
      for (const [name, topic] of eventTopics) events.set(name, await readTopic(await kafka.open('--events-topic'), topic));
      const replays = await replaySources(events, {
        sources: example.sources,
        readAt: Date.now(),
        allowedLatenessMs: allowedLateness ?? config.ALLOWED_LATENESS,
      });
      const replay = backfillStates(replays, example.groups);
      states = replay;
      replayed = replay.summaries;
    }
    const model = await loadModel(dir, { threads, maxBatchRows: 1024, maxDelayMs: 0, maxQueuedRows: 1024 * threads });
    try {
      const scores = await scoreRequests(parsed.requests, { plan, states, model, chunkRows: 1024, concurrency: threads });
      // Events none of which could be read (another topic's records, a damaged file) would leave every feature at its default.
      for (const replay of replayed) {
        const unusable = unusableEvents(replay, `events of source "${replay.source}"`);
        if (unusable !== null) throw new InputError(`${unusable}; nothing scored`);
      }
      await writeOutput(
        scores.map((s) => `${JSON.stringify(s)}\n`),
        target,
      );
    } finally {
      await model.close();
    }
  } finally {
    await kafka.close();
    await store?.close();
  }
  const lines = [`batch-predict: scored ${parsed.requests.length} request(s) with ${manifest.name} version ${manifest.version}`];
  lines.push(...replayLines(replayed));
  if (parsed.rejected.length > 0) lines.push(`  skipped ${parsed.rejected.length} bad line(s):`, ...named.map((line) => `  ${line}`));
  process.stderr.write(`${lines.join('\n')}\n`);
  for (const warning of lateWarnings('batch-predict', replayed)) process.stderr.write(warning);
}

runCli('batch-predict', main);
