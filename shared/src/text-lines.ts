/**
 * The lines of a text read as a stream, for the command-line tools' NDJSON inputs: one chunk
 * and one line in memory at a time, so that a file is not held whole (nor limited by the
 * largest string Node can make, 512 MB). A line is limited by it: a longer one is refused
 * (`LineTooLong`) before it is gathered. A byte-order mark starting the text is not part of
 * its first line.
 */
import { constants } from 'node:buffer';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { LogRecord } from './event-log/types.js';

export interface TextLine {
  /** 1-based: lines end at `\n`, blank ones included in the count. */
  number: number;
  text: string;
}

/** The longest line read, in characters (UTF-16 code units): the longest string Node makes. */
export const MAX_LINE_LENGTH = constants.MAX_STRING_LENGTH;

export interface LineLimit {
  /** The longest line read, in characters (default `MAX_LINE_LENGTH`). */
  maxLineLength?: number;
}

const BOM = '\uFEFF';

/** A line longer than the longest read: it cannot be held as one string. */
export class LineTooLong extends Error {
  override readonly name = 'LineTooLong';
  constructor(
    /** 1-based, as `TextLine.number`. */
    readonly line: number,
    readonly limit: number,
  ) {
    super(`line ${line} is longer than ${limit} characters, the longest line that can be read`);
  }
}

/** A text: whole, or in chunks split anywhere (a file's stream). */
export type TextChunks = string | Iterable<string> | AsyncIterable<string>;

/** The chunks of a text (a text given whole is one chunk). */
export const textChunks = (text: TextChunks): Iterable<string> | AsyncIterable<string> => (typeof text === 'string' ? [text] : text);

/** The chunks of a text as given; a line longer than `maxLineLength` is refused (`LineTooLong`) with the chunk that makes it so. */
async function* withinLineLimit(text: TextChunks, { maxLineLength = MAX_LINE_LENGTH }: LineLimit): AsyncGenerator<string> {
  let number = 1; // the line being read
  let length = 0; // its characters so far
  for await (const chunk of textChunks(text)) {
    for (let start = 0; ; number++, length = 0) {
      const end = chunk.indexOf('\n', start);
      length += (end === -1 ? chunk.length : end) - start;
      if (length > maxLineLength) throw new LineTooLong(number, maxLineLength);
      if (end === -1) break;
      start = end + 1;
    }
    yield chunk;
  }
}

/**
 * The non-blank lines of a text; blank and whitespace-only lines are skipped, but counted. A
 * byte-order mark starting the text (some editors write one) is not part of the first line.
 */
export async function* textLines(text: TextChunks, limit: LineLimit = {}): AsyncGenerator<TextLine> {
  let rest = '';
  let number = 0;
  let started = false;
  for await (const chunk of withinLineLimit(text, limit)) {
    const lines = chunk.split('\n');
    if (!started && chunk !== '') {
      started = true;
      if (lines[0]!.startsWith(BOM)) lines[0] = lines[0]!.slice(BOM.length);
    }
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
 * iterated, once; a read error, or a line too long to read (`LineTooLong`), is thrown by the
 * iteration. `failure` turns any of these errors into the caller's own (one naming the file's
 * role, say).
 */
export async function openTextFile(
  path: string,
  failure: (error: Error) => Error = (error) => error,
  limit: LineLimit = {},
): Promise<AsyncIterable<string>> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  await once(stream, 'ready').catch((error: Error) => {
    throw failure(error);
  });
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* withinLineLimit(stream as AsyncIterable<string>, limit);
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
