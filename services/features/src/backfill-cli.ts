/**
 * Point-in-time feature rows for a list of (entity, timestamp) pairs, replayed from NDJSON
 * files of events or from Kafka topics through the pipeline's own code:
 *
 *   npm run backfill -w services/features -- --queries queries.ndjson --events events.ndjson [--out rows.ndjson]
 *   npm run backfill -w services/features -- --queries queries.ndjson --topic transactions   (KAFKA_BROKERS set)
 *   npm run backfill -w services/features -- --queries q.ndjson --events e.ndjson --events labelled_transactions=labelled.ndjson
 *
 * `--events [SOURCE=]FILE` and `--topic [SOURCE=]TOPIC` give each source's events (a bare
 * value is the first source, transactions); the groups a query's entity has are answered
 * from the sources given (the others are named on stderr). A query line is
 * `{"entity": "user_id", "id": "u_1", "at": 1795000000000 | "2026-11-28T12:00:00Z"}`; each
 * output line is the query with `features: {group: {feature: value}}`: what a read at `at`
 * returns, so an event that arrived at exactly `at` is included (for the features before an
 * event at `at`, as the trainer builds its training rows, query `at - 1`). An events file is
 * read as one partition in file order (the order the pipeline would have seen).
 *
 * The rows are written line by line as they are made (to `--out`, whole or not at all, or to
 * stdout).
 *
 * Exit codes: 0 done, 1 bad input (an unreadable file, a bad query line or none, a source whose
 * events none could be used, an empty or missing topic) or a failure, 2 wrong options.
 */
import {
  checkBrokersReachable,
  createEventLog,
  fraud,
  isBadOption,
  outputTarget,
  UsageError,
  userPath,
  writeOutput,
  loadConfig,
  parseDuration,
  lineRecord,
  openTextFile,
  openTopic,
  textLines,
  type TextLine,
  parseCommandOptions,
  OutputClosed,
  sayStdoutFailure,
} from '@tributary/shared';
import { streamedReplay, type BackfillResult, type FeatureRow } from './backfill.js';
import { InputError, parseQueries, unusableSource } from './backfill-input.js';

/** `--allowed-lateness`: a duration, as ALLOWED_LATENESS (an empty value is an error, not the default). */
function parseLateness(value: string): number {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (error) {
    throw new UsageError(`--allowed-lateness: ${(error as Error).message}`);
  }
  if (ms > MAX_LATENESS_MS) throw new UsageError(`--allowed-lateness: ${value} is more than 365d (the most ALLOWED_LATENESS takes)`);
  return ms;
}

/** ALLOWED_LATENESS's bound: no event waits a year. */
const MAX_LATENESS_MS = 365 * 86_400_000;

/** `[SOURCE=]VALUE` flags by source name; a bare value is the first source's. */
function bySource(values: string[], sources: readonly string[], flag: string): Map<string, string> {
  const named = new Map<string, string>();
  for (const value of values) {
    const match = /^([a-z][a-z0-9_]*)=(.+)$/.exec(value);
    const [name, rest] = match ? [match[1]!, match[2]!] : [sources[0]!, value];
    if (!sources.includes(name)) throw new UsageError(`${flag} ${value}: unknown source "${name}" (known: ${sources.join(', ')})`);
    if (named.has(name)) throw new UsageError(`source "${name}" given twice`);
    named.set(name, rest);
  }
  return named;
}

/** A file's non-blank lines, read as a stream (never whole); a read error names the file. */
async function* readLines(path: string): AsyncGenerator<TextLine> {
  try {
    yield* textLines(await openTextFile(userPath(path)));
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** The output lines: a row each, made as they are written. */
function* rowLines(rows: FeatureRow[]): Generator<string> {
  for (const row of rows) yield `${JSON.stringify(row)}\n`;
}

async function main(): Promise<void> {
  const { values } = parseCommandOptions({
    options: {
      queries: { type: 'string' },
      events: { type: 'string', multiple: true },
      topic: { type: 'string', multiple: true },
      out: { type: 'string' },
      'allowed-lateness': { type: 'string' },
    },
  });
  if (!values.queries) throw new UsageError('--queries FILE is required (NDJSON lines {"entity","id","at"})');
  if (values.out?.trim() === '') throw new UsageError('--out must name a file (without it the rows go to stdout)');
  const config = loadConfig();
  const lateness = values['allowed-lateness'] === undefined ? config.ALLOWED_LATENESS : parseLateness(values['allowed-lateness']);
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const names = example.sources.map((s) => s.name);
  const files = bySource(values.events ?? [], names, '--events');
  const topics = bySource(values.topic ?? [], names, '--topic');
  for (const name of topics.keys()) if (files.has(name)) throw new UsageError(`source "${name}": give --events or --topic, not both`);
  // An --out that is one of the inputs would be emptied before it is read.
  const target = outputTarget(values.out, [
    { flag: '--queries', file: values.queries },
    ...[...files.values()].map((file) => ({ flag: '--events', file })),
  ]);
  if (files.size + topics.size === 0)
    throw new UsageError('give the events: --events [SOURCE=]FILE (NDJSON) or --topic [SOURCE=]NAME (Kafka), for each source');
  if (topics.size > 0 && !config.KAFKA_BROKERS) throw new UsageError('--topic needs KAFKA_BROKERS');

  const queries = await parseQueries(readLines(values.queries), values.queries);
  const knownEntities = new Set(example.groups.map((g) => g.entity));
  for (const q of queries)
    if (!knownEntities.has(q.entity))
      throw new InputError(`query for unknown entity type "${q.entity}" (known: ${[...knownEntities].join(', ')})`);
  // Each source's records are decided on as they are read, and the queries answered as the replay passes their
  // times: the events are applied as they are read, never all held (a topic's partitions come interleaved as they
  // are fetched: what is held is the events of a partition ahead of the others past the next query's time).
  const results = new Map<string, BackfillResult>();
  const replayOf = (name: string, partitions: number) =>
    streamedReplay({
      source: example.sources.find((s) => s.name === name)!,
      groups: example.groups,
      queries,
      partitions,
      allowedLatenessMs: lateness,
    });
  for (const [name, file] of files) {
    const replay = replayOf(name, 1);
    const topic = example.sources.find((s) => s.name === name)!.topic;
    for await (const line of readLines(file)) replay.add(0, lineRecord(topic, line));
    results.set(name, replay.finish());
  }
  if (topics.size > 0) {
    await checkBrokersReachable(config.KAFKA_BROKERS!);
    const eventLog = createEventLog(config, 'backfill');
    try {
      // Opened together (their consumer groups joined at once), then read one after the other.
      const opened: [string, Awaited<ReturnType<typeof openTopic>>][] = [];
      for (const [name, topic] of topics) opened.push([name, await openTopic(eventLog, topic, { groupPrefix: 'tributary-backfill' })]);
      for (const [name, records] of opened) {
        const replay = replayOf(name, records.partitions);
        for await (const record of records) replay.add(record.partition, record);
        results.set(name, replay.finish());
      }
    } finally {
      await eventLog.close();
    }
  }

  // Each source given answers its groups; a query's row holds the groups of all of them.
  const rows: FeatureRow[] = queries.map((query) => ({ ...query, features: {} }));
  const replayed: string[] = [];
  for (const [name, result] of results) {
    const unusable = unusableSource(name, result, topics.get(name));
    if (unusable !== null) throw new InputError(unusable);
    result.rows.forEach((row, i) => Object.assign(rows[i]!.features, row.features));
    replayed.push(
      `${result.accepted} events of ${name} (set aside: ${result.rejected.late} late, ${result.rejected.malformed} malformed, ${result.rejected.invalid} invalid)`,
    );
  }
  await writeOutput(rowLines(rows), target);
  process.stderr.write(`backfill: ${rows.length} rows from ${replayed.join('; ')}\n`);
  // Groups of the queried entities whose source was not given: left out of the rows, said so.
  const queried = new Set(queries.map((q) => q.entity));
  for (const group of example.groups) {
    const source = group.definition.source;
    if (!queried.has(group.entity) || results.has(source)) continue;
    process.stderr.write(
      `backfill: feature group ${group.definition.name} left out of the ${group.entity} rows: no events of source "${source}" ` +
        `(--events ${source}=FILE or --topic ${source}=TOPIC)\n`,
    );
  }
}

const stdoutFailure = sayStdoutFailure('backfill');
main().catch((error: unknown) => {
  if (error instanceof OutputClosed) {
    stdoutFailure(error);
    process.exit(1);
  }
  const usage = error instanceof UsageError || isBadOption(error);
  const said = usage || error instanceof InputError;
  process.stderr.write(`backfill: ${said ? '' : 'failed: '}${(error as Error).message}\n`);
  process.exit(usage ? 2 : 1);
});
