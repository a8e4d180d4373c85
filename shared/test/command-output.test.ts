/**
 * A command's output written in pieces (its lines), never made into one string: to a file whole
 * or not at all (a temporary file renamed at the end), every byte of it, and the pieces in order;
 * through a symbolic link to the file it points to, to a FIFO in place, never over an input.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeSync, type Stats } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { outputTarget, writeMode, writeOutput, type WriteBytes } from '../src/command-output.js';
import { UsageError } from '../src/errors.js';

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
    await writeOutput(lines(100_000), outputTarget(out));
    const text = await readFile(out, 'utf8');
    expect(text).toBe([...lines(100_000)].join(''));
    expect(text.length).toBeGreaterThan(3 << 20);
    expect(await readdir(dir)).toEqual(['set.ndjson']);
  });

  it('leaves no file, and no partial one, when the output fails half way', async () => {
    const out = join(dir, 'set.ndjson');
    await expect(writeOutput(lines(100_000, 60_000), outputTarget(out))).rejects.toThrow(
      /^could not write .*set\.ndjson: line 60000 could not be made$/,
    );
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
    await writeOutput(lines(100_000), outputTarget(out), shortWrites(4096));
    expect(await readFile(out, 'utf8')).toBe([...lines(100_000)].join(''));
  });

  it('keeps the file there as it was, and leaves no partial one, when a write fails after a short one', async () => {
    const out = join(dir, 'set.ndjson');
    await writeFile(out, 'the set before\n');
    await expect(writeOutput(lines(1000), outputTarget(out), shortWrites(1000, 4096))).rejects.toThrow(
      /^could not write .*set\.ndjson: EFBIG: file too large/,
    );
    expect(await readFile(out, 'utf8')).toBe('the set before\n');
    expect(await readdir(dir)).toEqual(['set.ndjson']);
  });
});

describe('the target of --out', () => {
  const text = 'the new set\n';

  it('writes through a symbolic link to the file it points to, the link kept', async () => {
    await mkdir(join(dir, 'sets'));
    await writeFile(join(dir, 'sets/set.json'), 'the set before\n');
    await symlink('sets/set.json', join(dir, 'latest.json'));
    await writeOutput(text, outputTarget(join(dir, 'latest.json')));
    expect((await lstat(join(dir, 'latest.json'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, 'latest.json'))).toBe('sets/set.json');
    expect(await readFile(join(dir, 'sets/set.json'), 'utf8')).toBe(text);
    expect([await readdir(dir), await readdir(join(dir, 'sets'))]).toEqual([['latest.json', 'sets'], ['set.json']]);
    // A link to where nothing is yet: the file is made there.
    await symlink('sets/next.json', join(dir, 'next.json'));
    await writeOutput(text, outputTarget(join(dir, 'next.json')));
    expect((await lstat(join(dir, 'next.json'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(dir, 'sets/next.json'), 'utf8')).toBe(text);
  });

  it('refuses, as a wrong option, an --out that is an input of the command, by any path to it', async () => {
    await writeFile(join(dir, 'tx.ndjson'), '{"event_id":"t1"}\n');
    await symlink('tx.ndjson', join(dir, 'link.ndjson'));
    const inputs = [
      { flag: '--labels', file: join(dir, 'labels.ndjson') },
      { flag: '--events', file: join(dir, 'tx.ndjson') },
    ];
    for (const out of ['tx.ndjson', 'link.ndjson', './tx.ndjson']) {
      expect(() => outputTarget(join(dir, out), inputs)).toThrow(UsageError);
      expect(() => outputTarget(join(dir, out), inputs)).toThrow(
        `--out ${join(dir, out)} is the input --events ${join(dir, 'tx.ndjson')}: writing it would destroy what is read; give another file`,
      );
    }
    expect(await readFile(join(dir, 'tx.ndjson'), 'utf8')).toBe('{"event_id":"t1"}\n');
    expect(outputTarget(join(dir, 'set.json'), inputs)).toMatchObject({ kind: 'replace', path: join(dir, 'set.json') });
  });

  it('keeps the mode of the file it replaces', async () => {
    const out = join(dir, 'set.json');
    await writeFile(out, 'the set before\n', { mode: 0o600 });
    await writeOutput(text, outputTarget(out));
    expect([(await stat(out)).mode & 0o777, await readFile(out, 'utf8')]).toEqual([0o600, text]);
  });

  it('refuses a directory as a wrong option', () => {
    expect(() => outputTarget(dir)).toThrow(`--out ${dir} is a directory: give a file`);
  });

  it('writes a device or a FIFO in place, a file (or nothing yet) through a file renamed over it', () => {
    const found = (kind: 'file' | 'link' | 'directory' | 'other') =>
      ({ isFile: () => kind === 'file', isSymbolicLink: () => kind === 'link', isDirectory: () => kind === 'directory' }) as Stats;
    expect([null, found('file'), found('link'), found('directory'), found('other')].map(writeMode)).toEqual([
      'replace',
      'replace',
      'follow_link',
      'directory',
      'in_place',
    ]);
  });

  it('writes to a FIFO in place: the FIFO stays, its reader gets the output', async () => {
    const fifo = join(dir, 'set.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo]);
    let read = '';
    reader.stdout.on('data', (chunk: Buffer) => (read += chunk.toString()));
    try {
      const target = outputTarget(fifo);
      expect(target).toEqual({ kind: 'in_place', out: fifo, path: fifo });
      await writeOutput(lines(1000), target);
      await once(reader, 'close');
    } finally {
      reader.kill();
    }
    expect(read).toBe([...lines(1000)].join(''));
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(['set.fifo']);
  });
});
