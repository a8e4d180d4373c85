/**
 * A command's output lines, written as they are made to a file or to stdout: gathered into
 * chunks and written chunk by chunk, never joined into one text, so an output is not bounded
 * by the largest string Node makes (512 MB). A file is written whole or not at all: the lines
 * go to a temporary file beside it, renamed over it once the last is written.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Characters of output gathered before each write. */
const OUTPUT_CHUNK = 1 << 20;

/**
 * Writes `lines`, each ended by a newline, to the file `path` or (without one) to stdout; a
 * failure, of a write or of the lines' making, is thrown as `could not write …` and leaves no
 * file behind. `chunk`: the characters gathered before each write.
 */
export function writeLines(lines: Iterable<string>, path?: string, chunk = OUTPUT_CHUNK): void {
  const partial = path && join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  let fd: number | undefined;
  try {
    // stdout is written synchronously for files and pipes on Linux (Node's process.stdout).
    fd = partial ? openSync(partial, 'w') : undefined;
    let gathered: string[] = [];
    let size = 0;
    const flush = () => {
      const text = gathered.join('');
      if (fd === undefined) process.stdout.write(text);
      else writeSync(fd, text);
      gathered = [];
      size = 0;
    };
    for (const line of lines) {
      gathered.push(line, '\n');
      size += line.length + 1;
      if (size >= chunk) flush();
    }
    flush();
    if (fd !== undefined) {
      closeSync(fd);
      fd = undefined;
      renameSync(partial!, path!);
    }
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    if (partial) rmSync(partial, { force: true });
    throw new Error(`could not write ${path ?? 'the output'}: ${(error as Error).message}`);
  }
}
