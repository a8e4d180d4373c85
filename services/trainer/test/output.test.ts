/**
 * A command's output written in pieces (its lines), never made into one string: to a file whole
 * or not at all (a temporary file renamed at the end), every byte of it, and the pieces in order.
 */
import { writeSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeOutput, type WriteBytes } from '../src/cli-support.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'output-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function* lines(count: number, failAt?: number): Generator<string> {
  for (let i = 0; i < count; i++) {
    if (i === failAt) throw new Error(`line ${i} could not be made`);
    // ~40 characters each: several write chunks of 1 MiB over the run.
    yield `${JSON.stringify({ row: i, text: 'x'.repeat(20) })}\n`;
  }
}

describe('writeOutput', () => {
  it('writes the pieces of an output to a file in order, in several writes', async () => {
    const out = join(dir, 'set.ndjson');
    writeOutput(lines(100_000), out);
    const text = await readFile(out, 'utf8');
    expect(text).toBe([...lines(100_000)].join(''));
    expect(text.length).toBeGreaterThan(3 << 20);
    expect(await readdir(dir)).toEqual(['set.ndjson']);
  });

  it('leaves no file, and no partial one, when the output fails half way', async () => {
    const out = join(dir, 'set.ndjson');
    expect(() => writeOutput(lines(100_000, 60_000), out)).toThrow(/^could not write .*set\.ndjson: line 60000 could not be made$/);
    expect(await readdir(dir)).toEqual([]);
  });

  /** Writes at most `most` bytes a call; once `limit` bytes are in the file, fails as a write past a file size limit does. */
  function shortWrites(most: number, limit = Infinity): WriteBytes {
    let total = 0;
    return (fd, bytes, offset, length) => {
      if (total >= limit) throw Object.assign(new Error('EFBIG: file too large, write'), { code: 'EFBIG' });
      const written = writeSync(fd, bytes, offset, Math.min(length, most, limit - total));
      total += written;
      return written;
    };
  }

  it('writes every byte when the system takes fewer than asked at a time', async () => {
    const out = join(dir, 'set.ndjson');
    writeOutput(lines(100_000), out, shortWrites(4096));
    expect(await readFile(out, 'utf8')).toBe([...lines(100_000)].join(''));
  });

  it('keeps the file there as it was, and leaves no partial one, when a write fails after a short one', async () => {
    const out = join(dir, 'set.ndjson');
    await writeFile(out, 'the set before\n');
    expect(() => writeOutput(lines(1000), out, shortWrites(1000, 4096))).toThrow(/^could not write .*set\.ndjson: EFBIG: file too large/);
    expect(await readFile(out, 'utf8')).toBe('the set before\n');
    expect(await readdir(dir)).toEqual(['set.ndjson']);
  });
});
