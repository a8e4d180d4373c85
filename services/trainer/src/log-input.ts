/**
 * Records to build training sets and batch scores from: an NDJSON file (one record a line,
 * read as one partition in file order) or a Kafka topic read through the event log, from
 * the start of each partition to its end when the read began. Each record says where it
 * came from (`file:line` or `topic/partition@offset`), so that errors can name it.
 */
import { readFileSync } from 'node:fs';
import { readTopicToEnd, TopicReadTimeout, type EventLog, type LogRecord, type TopicReadOptions } from '@tributary/shared';

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

/**
 * A topic from the start of each partition up to its end when the read began (`readTopicToEnd`);
 * a read that does not reach the end in time is an input error.
 */
export async function readTopic(eventLog: EventLog, topic: string, options: TopicReadOptions = {}): Promise<LogInput> {
  try {
    const partitions = await readTopicToEnd(eventLog, topic, { groupPrefix: 'tributary-trainer-read', ...options });
    return { name: topic, kind: 'topic', partitions };
  } catch (error) {
    throw error instanceof TopicReadTimeout ? new InputError(error.message) : error;
  }
}
