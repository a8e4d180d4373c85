/**
 * Records to build training sets and batch scores from: an NDJSON file (one record a line,
 * read as one partition in file order) or a Kafka topic read through the event log, from
 * the start of each partition to its end when the read began. Each record says where it
 * came from (`file:line` or `topic/partition@offset`), so that errors can name it.
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { EventLog, LogRecord } from '@tributary/shared';

export class InputError extends Error {
  override name = 'InputError';
}

export interface LogInput {
  /** The file path or topic name. */
  name: string;
  kind: 'file' | 'topic';
  /** Each partition's records in offset order (a file is one partition; a record's offset is its line index). */
  partitions: LogRecord[][];
}

/** Where a record of an input is: `file:line` or `topic/partition@offset`. */
export function where(input: Pick<LogInput, 'name' | 'kind'>, record: Pick<LogRecord, 'partition' | 'offset'>): string {
  return input.kind === 'file' ? `${input.name}:${Number(record.offset) + 1}` : `${input.name}/${record.partition}@${record.offset}`;
}

/** The lines of a text as records (blank lines skipped; a record's offset is its 0-based line index). */
export function ndjsonInput(name: string, text: string, topic = name): LogInput {
  const records: LogRecord[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    records.push({ topic, partition: 0, offset: String(index), key: null, value: Buffer.from(line), timestamp: 0, headers: {} });
  });
  return { name, kind: 'file', partitions: [records] };
}

/** An NDJSON file; `name` (default: the path) is how its records are named in messages. */
export function readNdjsonFile(path: string, name = path): LogInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read ${name}: ${(error as Error).message}`);
  }
  return ndjsonInput(name, text);
}

export interface TopicReadOptions {
  /** Gives up when the topic is not read to its end in this time. */
  timeoutMs?: number;
}

/**
 * Reads a topic from the start of each partition up to its end when the read began, as a
 * consumer group of its own that commits nothing (the services' groups are not touched).
 */
export async function readTopic(eventLog: EventLog, topic: string, options: TopicReadOptions = {}): Promise<LogInput> {
  const ends = await eventLog.endOffsets(topic);
  const partitions: LogRecord[][] = ends.map(() => []);
  const remaining = new Set(ends.filter((p) => BigInt(p.end) > BigInt(p.start)).map((p) => p.partition));
  if (remaining.size === 0) return { name: topic, kind: 'topic', partitions };
  const end = new Map(ends.map((p) => [p.partition, BigInt(p.end)]));
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const subscription = await eventLog.subscribe({
    groupId: `tributary-trainer-read-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    autoCommit: false,
    eachBatch: async (batch) => {
      const last = end.get(batch.partition);
      if (last === undefined || !remaining.has(batch.partition)) return;
      const target = partitions[batch.partition]!;
      for (const record of batch.records) {
        const offset = BigInt(record.offset);
        if (offset >= last) break;
        // A batch delivered again (after a rebalance) holds records already kept.
        if (target.length > 0 && offset <= BigInt(target[target.length - 1]!.offset)) continue;
        target.push(record);
        if (offset + 1n >= last) remaining.delete(batch.partition);
      }
      if (remaining.size === 0) finish();
    },
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new InputError(
                `topic ${topic}: not read to its end within ${timeoutMs} ms (partitions still short: ${[...remaining].join(', ')})`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await subscription.stop();
  }
  return { name: topic, kind: 'topic', partitions };
}
