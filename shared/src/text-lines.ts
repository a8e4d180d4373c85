/**
 * The lines of a text read as a stream, for the command-line tools' NDJSON inputs: one chunk
 * and one line in memory at a time, so that a file is not held whole (nor limited by the
 * largest string Node can make, 512 MB).
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { LogRecord } from './event-log/types.js';

export interface TextLine {
  /** 1-based: lines end at `\n`, blank ones included in the count. */
  number: number;
  text: string;
}

/** A text: whole, or in chunks split anywhere (a file's stream). */
export type TextChunks = string | Iterable<string> | AsyncIterable<string>;

/** The chunks of a text (a text given whole is one chunk). */
export const textChunks = (text: TextChunks): Iterable<string> | AsyncIterable<string> => (typeof text === 'string' ? [text] : text);

/** The non-blank lines of a text; blank and whitespace-only lines are skipped, but counted. */
export async function* textLines(text: TextChunks): AsyncGenerator<TextLine> {
  let rest = '';
  let number = 0;
  for await (const chunk of textChunks(text)) {
    const lines = chunk.split('\n');
    lines[0] = rest + lines[0]!;
    rest = lines.pop()!;
    for (const text of lines) {
      number++;
      if (text.trim() !== '') yield { number, text };
    }
  }
  number++;
  if (rest.trim() !== '') yield { number, text: rest };
}

/**
 * A UTF-8 file, opened (an error opening it is thrown here) and read in chunks as they are
 * iterated, once; a read error is thrown by the iteration. `failure` turns either error into
 * the caller's own (one naming the file's role, say).
 */
export async function openTextFile(path: string, failure: (error: Error) => Error = (error) => error): Promise<AsyncIterable<string>> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  await once(stream, 'ready').catch((error: Error) => {
    throw failure(error);
  });
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* stream;
      } catch (error) {
        throw failure(error as Error);
      }
    },
  };
}

/** An NDJSON line as a record of `topic`: partition 0, its offset the 0-based line index, no key and no log timestamp. */
export function lineRecord(topic: string, line: TextLine): LogRecord {
  return { topic, partition: 0, offset: String(line.number - 1), key: null, value: Buffer.from(line.text), timestamp: 0, headers: {} };
}
