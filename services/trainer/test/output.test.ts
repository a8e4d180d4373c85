/**
 * A command's output written in pieces (its lines), never made into one string: to a file whole
 * or not at all (a temporary file renamed at the end), and the pieces in order.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeOutput } from '../src/cli-support.js';

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
});
