/**
 * A command's output lines are written as they are made, a chunk at a time (never joined into
 * one text, which Node bounds at 512 MB); a file is written whole or not at all.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { outputTarget, writeOutput } from '../src/command-output.js';

/** The lines, each ended by a newline, to `out` (stdout without it), in chunks of `chunk` characters. */
const writeLines = (lines: Iterable<string>, out: string | undefined, chunk: number) =>
  writeOutput(
    (function* () {
      for (const line of lines) yield `${line}\n`;
    })(),
    outputTarget(out),
    undefined,
    chunk,
  );

describe('writeOutput of lines', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-write-lines-'));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a file chunk by chunk as the lines are made, under another name until the last', async () => {
    const out = join(dir, 'rows.ndjson');
    const seen: string[][] = [];
    function* lines() {
      for (let i = 1; i <= 4; i++) {
        // What is on disk when line i is made: the lines before it, in a file not yet named `out`.
        seen.push(readdirSync(dir).map((name) => `${name}: ${readFileSync(join(dir, name), 'utf8').split('\n').length - 1}`));
        yield `{"n":${i}}`;
      }
    }
    await writeLines(lines(), out, 16);
    expect(seen.map((files) => files.map((file) => file.replace(/^\.rows\.ndjson\.\d+\.partial/, 'partial')))).toEqual([
      ['partial: 0'],
      ['partial: 0'],
      ['partial: 2'],
      ['partial: 2'],
    ]);
    expect(await readFile(out, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
    expect(await readdir(dir)).toEqual(['rows.ndjson']);
  });

  it('leaves no file, and a file it would have replaced as it was, when the lines fail', async () => {
    const out = join(dir, 'rows.ndjson');
    await writeFile(out, 'before\n');
    function* failing() {
      yield 'x'.repeat(100);
      throw new RangeError('Invalid string length');
    }
    await expect(writeLines(failing(), out, 10)).rejects.toThrow(`could not write ${out}: Invalid string length`);
    expect(await readdir(dir)).toEqual(['rows.ndjson']);
    expect(await readFile(out, 'utf8')).toBe('before\n');
  });

  it('writes to stdout without a file, a chunk at a time', async () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((text, done) => {
      (done as unknown as () => void)();
      return written.push(String(text)) > 0;
    });
    await writeLines(['{"n":1}', '{"n":2}', '{"n":3}'], undefined, 16);
    expect(written).toEqual(['{"n":1}\n{"n":2}\n', '{"n":3}\n']);
  });
});
