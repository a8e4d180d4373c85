/**
 * Records to build training sets and batch scores from: an NDJSON file (one record a line,
 * read as one partition in file order) or a Kafka topic read through the event log, from
 * the start of each partition to its end when the read began. Each record says where it
 * came from (`file:line` or `topic/partition@offset`), so that errors can name it.
 *
 * A file is read as a stream, once, as its records are consumed: one line in memory at a
 * time, whatever the file's size. What a consumer keeps is its own parsed rows. A topic's
 * records are read into memory whole (`readTopicToEnd`).
 */
import {
  lineRecord,
  openTextFile,
  readTopicToEnd,
  textLines,
  TopicReadTimeout,
  type EventLog,
  type LogRecord,
  type TextChunks,
  type TopicReadOptions,
} from '@tributary/shared';

export class InputError extends Error {
  override name = 'InputError';
}

export interface LogInput {
  /** The file path or topic name. */
  name: string;
  kind: 'file' | 'topic';
  /** Each partition's records in offset order (a file is one partition, read as it is iterated; a record's offset is its line index). */
  partitions: (Iterable<LogRecord> | AsyncIterable<LogRecord>)[];
}

/** Where a record of an input is: `file:line` or `topic/partition@offset`. */
export function where(input: Pick<LogInput, 'name' | 'kind'>, record: Pick<LogRecord, 'partition' | 'offset'>): string {
  return input.kind === 'file' ? `${input.name}:${Number(record.offset) + 1}` : `${input.name}/${record.partition}@${record.offset}`;
}

/**
 * The lines of an NDJSON text as records, made as they are iterated (blank lines skipped; a
 * record's offset is its 0-based line index): the text whole, or its chunks split anywhere.
 */
export function ndjsonInput(name: string, text: TextChunks, topic = name): LogInput {
  const records = {
    async *[Symbol.asyncIterator]() {
      for await (const line of textLines(text)) yield lineRecord(topic, line);
    },
  };
  return { name, kind: 'file', partitions: [records] };
}

/**
 * A file's text, opened now (one that cannot be is refused at once) and read as a stream as
 * it is iterated, only once (a pipe such as `<(zcat events.gz)` cannot be read twice); a read
 * error names the file by `name`.
 */
export async function openInputFile(path: string, name: string): Promise<AsyncIterable<string>> {
  const file = await openTextFile(path, (error) => new InputError(`cannot read ${name}: ${error.message}`));
  let read = false;
  return {
    async *[Symbol.asyncIterator]() {
      if (read) throw new Error(`${name} is read once: its records must be consumed in one pass`);
      read = true;
      yield* file;
    },
  };
}

/** An NDJSON file (`openInputFile`); `name` (default: the path) is how its records are named in messages. */
export async function readNdjsonFile(path: string, name = path): Promise<LogInput> {
  return ndjsonInput(name, await openInputFile(path, name));
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
