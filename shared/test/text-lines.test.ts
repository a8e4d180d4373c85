/**
 * The lines of the tools' NDJSON inputs, read as a stream: chunks split anywhere give the
 * lines of the text whole, numbered as the file's lines, and a line is handed on as soon as
 * its chunk is read, never after the whole text.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openTextFile, textLines, type TextLine } from '../src/index.js';

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
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
