/**
 * Records to build training sets and batch scores from: an NDJSON file (one record a line,
 * read as one partition in file order) or a Kafka topic read through the event log, from
 * the start of each partition to its end when the topic was opened. Each record says where it
 * came from (`file:line` or `topic/partition@offset`), so that errors can name it.
 *
 * Both are read as streams, once, as their records are consumed: a file one line at a time, a
 * topic one fetched batch at a time, whatever their size. What a consumer keeps is its own
 * parsed rows.
 */
import {
  lineRecord,
  openTextFile,
  openTopic,
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
  /**
   * The records, read as they are iterated: each partition's in offset order, a topic's
   * partitions interleaved as they are fetched (a file is partition 0; a record's offset is its
   * line index). A consumer whose result depends on the order of records of different
   * partitions takes them in partition order (`byPartition`), as a read partition by partition.
   */
  records: Iterable<LogRecord> | AsyncIterable<LogRecord>;
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
  return { name, kind: 'file', records };
}

/** Items of the records of an input, in the order a read partition by partition gives (each partition's in the order given). */
export function byPartition<T>(items: { partition: number; item: T }[]): T[] {
  return items.sort((a, b) => a.partition - b.partition).map(({ item }) => item);
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
 * A topic from the start of each partition up to its end now (`openTopic`), read as a stream as
 * it is iterated, only once; a read during which no record comes in time is an input error.
 */
export async function readTopic(eventLog: EventLog, topic: string, options: TopicReadOptions = {}): Promise<LogInput> {
  const opened = await openTopic(eventLog, topic, { groupPrefix: 'tributary-trainer-read', ...options });
  const records = {
    async *[Symbol.asyncIterator]() {
      try {
        yield* opened;
      } catch (error) {
        throw error instanceof TopicReadTimeout ? new InputError(error.message) : error;
      }
    },
  };
  return { name: topic, kind: 'topic', records };
}
