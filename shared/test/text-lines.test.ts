/**
 * The lines of the tools' NDJSON inputs, read as a stream: chunks split anywhere give the
 * lines of the text whole, numbered as the file's lines, and a line is handed on as soon as
 * its chunk is read, never after the whole text. A line too long to be one string is refused
 * by its number (shown with a small limit), and a byte-order mark is not part of the first line.
 */
import { constants } from 'node:buffer';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineTooLong, MAX_LINE_LENGTH, openTextFile, textLines, type TextLine } from '../src/index.js';

async function all(lines: AsyncIterable<TextLine>): Promise<TextLine[]> {
  const read: TextLine[] = [];
  for await (const line of lines) read.push(line);
  return read;
}

describe('textLines', () => {
  const text = '{"a":1}\n\n  \r\n{"b":"é"}\r\n{"c":3}';

  it('numbers the lines as the file does (blank ones counted, not given), wherever the chunks are split', async () => {
    const whole = await all(textLines([text]));
    expect(whole).toEqual([
      { number: 1, text: '{"a":1}' },
      { number: 4, text: '{"b":"é"}\r' },
      { number: 5, text: '{"c":3}' },
    ]);
    for (let size = 1; size <= text.length; size++) {
      const chunks = Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size));
      expect(await all(textLines(chunks))).toEqual(whole);
    }
    expect(await all(textLines(['a\n', '\n']))).toEqual([{ number: 1, text: 'a' }]);
  });

  it('leaves out a byte-order mark starting the text, wherever the chunks are split', async () => {
    const marked = '\uFEFF{"a":1}\n{"b":2}\n';
    const lines = [
      { number: 1, text: '{"a":1}' },
      { number: 2, text: '{"b":2}' },
    ];
    expect(await all(textLines(marked))).toEqual(lines);
    expect(await all(textLines(['', '\uFEFF', '{"a":1}\n{"b":2}\n']))).toEqual(lines);
    // Only the text's first character: one further on is the line's own.
    expect(await all(textLines('{"a":1}\n\uFEFF{"b":2}'))).toEqual([lines[0], { number: 2, text: '\uFEFF{"b":2}' }]);
  });

  it('refuses a line longer than the limit by its number, before it is gathered whole', async () => {
    expect(MAX_LINE_LENGTH).toBe(constants.MAX_STRING_LENGTH);
    const text = `{"a":1}\n\n${'x'.repeat(20)}\n{"b":2}`;
    const read = (chunks: string[], maxLineLength: number) => all(textLines(chunks, { maxLineLength }));
    for (const chunks of [[text], text.split('')]) {
      await expect(read(chunks, 20)).resolves.toHaveLength(3);
      const refused = await read(chunks, 19).then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(LineTooLong);
      expect(refused).toMatchObject({
        line: 3,
        limit: 19,
        message: 'line 3 is longer than 19 characters, the longest line that can be read',
      });
    }
    // A line still being read, its end not yet come: refused with the chunk that passes the limit.
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield 'x'.repeat(10);
      }
    }
    await expect(all(textLines(endless(), { maxLineLength: 25 }))).rejects.toThrow(/^line 1 is longer than 25 characters/);
    expect(pulled).toBe(3);
  });

  it('hands each line on when its chunk is read, not after the whole text', async () => {
    let pulled = 0;
    async function* oneLineAChunk() {
      for (let i = 1; i <= 1000; i++) {
        pulled = i;
        yield `{"n":${i}}\n`;
      }
    }
    for await (const line of textLines(oneLineAChunk())) {
      // The chunk ending line n has been read, and nothing after it.
      expect(pulled).toBe(line.number);
    }
    expect(pulled).toBe(1000);
  });

  it('reads a file in chunks, a character split between two of them read whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-text-lines-'));
    try {
      // 3-byte characters in lines of odd lengths: chunk boundaries fall inside characters and lines.
      const lines = Array.from({ length: 20_000 }, (_, i) => `{"id":"€${i}","pad":"${'€'.repeat(i % 7)}"}`);
      await writeFile(join(dir, 'lines.ndjson'), `${lines.join('\n')}\n`);
      const read = await all(textLines(await openTextFile(join(dir, 'lines.ndjson'))));
      expect(read.map((l) => l.text)).toEqual(lines);
      expect(read.at(-1)!.number).toBe(20_000);
      await expect(openTextFile(join(dir, 'missing.ndjson'))).rejects.toThrow(/ENOENT: no such file or directory, open/);
      // A line too long (the second is 21 characters) is a read error of the file's, turned into the caller's own.
      const named = (error: Error) => new Error(`cannot read lines.ndjson: ${error.message}`);
      const file = await openTextFile(join(dir, 'lines.ndjson'), named, { maxLineLength: 20 });
      await expect(all(textLines(file))).rejects.toThrow(/^cannot read lines\.ndjson: line 2 is longer than 20 characters/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
