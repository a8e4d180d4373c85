/**
 * Point-in-time feature rows for a list of (entity, timestamp) pairs, replayed from an
 * NDJSON file of events or from a Kafka topic through the pipeline's own code:
 *
 *   npm run backfill -w services/features -- --queries queries.ndjson --events events.ndjson [--out rows.ndjson]
 *   npm run backfill -w services/features -- --queries queries.ndjson --topic transactions   (KAFKA_BROKERS set)
 *
 * A query line is `{"entity": "user_id", "id": "u_1", "at": 1795000000000 | "2026-11-28T12:00:00Z"}`;
 * each output line is the query with `features: {group: {feature: value}}`: what a read at `at`
 * returns, so an event that arrived at exactly `at` is included (for the features before an event
 * at `at`, as the trainer builds its training rows, query `at - 1`). An events file is
 * read as one partition in file order (the order the pipeline would have seen).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  checkBrokersReachable,
  createEventLog,
  fraud,
  isBadOption,
  loadConfig,
  parseDuration,
  parseEventTime,
  readTopicToEnd,
  type LogRecord,
} from '@tributary/shared';
import { backfill, unusableEvents, type FeatureQuery } from './backfill.js';

class UsageError extends Error {}

/** `--allowed-lateness`: a duration, as ALLOWED_LATENESS (an empty value is an error, not the default). */
function parseLateness(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new UsageError(`--allowed-lateness: ${(error as Error).message}`);
  }
}

function readLines(path: string): string[] {
  try {
    return readFileSync(resolve(process.env.INIT_CWD ?? process.cwd(), path), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

export function parseQueries(lines: string[], file: string): FeatureQuery[] {
  return lines.map((line, i) => {
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new UsageError(`${where}: invalid JSON: ${(error as Error).message}`);
    }
    const q = value as Record<string, unknown>;
    if (typeof q !== 'object' || q === null) throw new UsageError(`${where}: a query must be a JSON object`);
    if (typeof q.entity !== 'string' || q.entity === '') throw new UsageError(`${where}: "entity" must be a non-empty string`);
    if (typeof q.id !== 'string' || q.id === '') throw new UsageError(`${where}: "id" must be a non-empty string`);
    const at = parseEventTime(q.at);
    if (at === null) throw new UsageError(`${where}: "at" must be epoch milliseconds or an RFC 3339 date-time with a zone`);
    return { entity: q.entity, id: q.id, at };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      queries: { type: 'string' },
      events: { type: 'string' },
      topic: { type: 'string' },
      out: { type: 'string' },
      'allowed-lateness': { type: 'string' },
    },
  });
  if (!values.queries) throw new UsageError('--queries FILE is required (NDJSON lines {"entity","id","at"})');
  if (Boolean(values.events) === Boolean(values.topic))
    throw new UsageError('give exactly one of --events FILE (NDJSON) or --topic NAME (Kafka)');
  const config = loadConfig();
  const lateness = values['allowed-lateness'] === undefined ? config.ALLOWED_LATENESS : parseLateness(values['allowed-lateness']);
  const example = fraud.fraudExample({ transactions: values.topic ?? config.TOPIC_TRANSACTIONS });
  const queries = parseQueries(readLines(values.queries), values.queries);
  const knownEntities = new Set(example.groups.map((g) => g.entity));
  for (const q of queries)
    if (!knownEntities.has(q.entity))
      throw new UsageError(`query for unknown entity type "${q.entity}" (known: ${[...knownEntities].join(', ')})`);
  let partitions: LogRecord[][];
  if (values.events) {
    const topic = example.sources[0]!.topic;
    partitions = [
      readLines(values.events).map((line, i) => ({
        topic,
        partition: 0,
        offset: String(i),
        key: null,
        value: Buffer.from(line),
        timestamp: 0,
        headers: {},
      })),
    ];
  } else {
    if (!config.KAFKA_BROKERS) throw new UsageError('--topic needs KAFKA_BROKERS');
    await checkBrokersReachable(config.KAFKA_BROKERS);
    const eventLog = createEventLog(config, 'backfill');
    try {
      partitions = await readTopicToEnd(eventLog, values.topic!, { groupPrefix: 'tributary-backfill' });
    } finally {
      await eventLog.close();
    }
  }
  const result = backfill({
    groups: example.groups,
    source: example.sources[0]!,
    allowedLatenessMs: lateness,
    partitions,
    queries,
    // An events file has no log timestamps: its event times are judged against now.
    readAt: Date.now(),
  });
  const unusable = unusableEvents(result, 'events');
  if (unusable !== null) throw new Error(`${unusable}: are they events of ${example.sources[0]!.name}?`);
  const text = result.rows.map((row) => JSON.stringify(row)).join('\n') + (result.rows.length > 0 ? '\n' : '');
  if (values.out) writeFileSync(resolve(process.env.INIT_CWD ?? process.cwd(), values.out), text);
  else process.stdout.write(text);
  process.stderr.write(
    `backfill: ${result.rows.length} rows from ${result.accepted} events (set aside: ${result.rejected.late} late, ${result.rejected.malformed} malformed, ${result.rejected.invalid} invalid)\n`,
  );
}

main().catch((error: unknown) => {
  const usage = error instanceof UsageError || isBadOption(error);
  process.stderr.write(`backfill: ${usage ? '' : 'failed: '}${(error as Error).message}\n`);
  process.exit(usage ? 2 : 1);
});
