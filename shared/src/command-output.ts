/**
 * Where a command's output goes (`--out FILE`, else stdout) and how it is written there: a regular
 * file (or none yet) whole or not at all, through a file beside it synced and renamed into place;
 * through a symbolic link, the file it points to so; a device or FIFO in place. An input of the
 * command is never an output.
 */
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from './errors.js';

/** A path given on a command line, from where the command was run (`npm run` changes into the package: INIT_CWD). */
export function userPath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.INIT_CWD ?? process.cwd(), path);
}

/** stdout was closed by its reader (`| head`) before the end of the output: exit code 1, the output being incomplete. */
export class OutputClosed extends Error {
  override name = 'OutputClosed';
  constructor() {
    super('stdout was closed before the end of the output (EPIPE)');
  }
}

/**
 * Says once, as `<name>: <reason>` on stderr, that stdout cannot be written (its reader closed it:
 * `| head`), with exit code 1 (the output is incomplete), instead of Node's unhandled 'error' event
 * and its stack trace. Returns the function that says it, for an `OutputClosed` the command catches.
 */
export function sayStdoutFailure(name: string): (error: Error) => void {
  let said = false;
  const say = (error: Error): void => {
    if (said) return;
    said = true;
    process.exitCode = 1;
    const closed = error instanceof OutputClosed || (error as NodeJS.ErrnoException).code === 'EPIPE';
    process.stderr.write(`${name}: ${closed ? new OutputClosed().message : `failed: cannot write stdout: ${error.message}`}\n`);
  };
  process.stdout.on('error', say);
  return say;
}

/** Where an output is written: stdout; a file replaced whole (its mode kept); a device or FIFO written in place. */
export type OutputTarget =
  | { kind: 'stdout' }
  | { kind: 'replace'; out: string; path: string; mode: number | null }
  | { kind: 'in_place'; out: string; path: string };

/** How a path is written, from what `lstat` found there (null: nothing). */
export type WriteMode = 'replace' | 'follow_link' | 'in_place' | 'directory';

export function writeMode(found: Pick<Stats, 'isFile' | 'isSymbolicLink' | 'isDirectory'> | null): WriteMode {
  if (found === null || found.isFile()) return 'replace';
  if (found.isSymbolicLink()) return 'follow_link';
  return found.isDirectory() ? 'directory' : 'in_place';
}

/** An input file of the command: its flag and path as given. */
export interface InputFile {
  flag: string;
  file: string;
}

/**
 * The target of `--out` (undefined: stdout): a symbolic link is followed to where it points, even
 * where nothing is yet. Refused as a wrong option: a directory, and a file that is one of `inputs`.
 */
export function outputTarget(out: string | undefined, inputs: InputFile[] = []): OutputTarget {
  if (out === undefined) return { kind: 'stdout' };
  try {
    return fileTarget(out, inputs);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--out ${out}: ${(error as Error).message}`);
  }
}

function fileTarget(out: string, inputs: InputFile[]): OutputTarget {
  let path = userPath(out);
  for (let links = 0; ; links++) {
    const found = lstatSync(path, { throwIfNoEntry: false }) ?? null;
    const mode = writeMode(found);
    if (mode === 'follow_link') {
      if (links === 40) throw new UsageError(`--out ${out}: too many symbolic links`);
      // As the system resolves it: relative to the real directory of the link.
      path = resolve(realpathSync(dirname(path)), readlinkSync(path));
      continue;
    }
    if (mode === 'directory') throw new UsageError(`--out ${out} is a directory: give a file`);
    if (mode === 'in_place') return { kind: 'in_place', out, path };
    for (const input of found ? inputs : []) {
      const read = statSync(userPath(input.file), { throwIfNoEntry: false });
      if (read && read.dev === found!.dev && read.ino === found!.ino)
        throw new UsageError(
          `--out ${out} is the input ${input.flag} ${input.file}: writing it would destroy what is read; give another file`,
        );
    }
    return { kind: 'replace', out, path, mode: found ? found.mode & 0o7777 : null };
  }
}

/** Characters of output gathered before each write. */
const OUTPUT_CHUNK = 1 << 20;

/** How bytes go to a file descriptor: `fs.writeSync`'s form, returning how many were written (possibly fewer). */
export type WriteBytes = (fd: number, bytes: Uint8Array, offset: number, length: number) => number;

/** Writes every byte of `text` to `fd`: a short write (a full disk, a file size limit) is carried on until all are written or one fails. */
export function writeAll(fd: number, text: string, write: WriteBytes = writeSync): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    const written = write(fd, bytes, offset, bytes.length - offset);
    if (!(written > 0)) throw new Error(`no byte written after ${offset} of ${bytes.length}`);
    offset += written;
  }
}

/**
 * Writes a command's output, given as pieces (lines), to its target: in chunks, so an output is
 * not bounded by the largest string Node makes (512 MB). A file is replaced whole or not at all:
 * the pieces go to a temporary file beside it, synced to disk and renamed over it at the end.
 * Each chunk written to stdout is waited for: a reader that closed it (`| head`) stops the output
 * there (`OutputClosed`).
 */
export async function writeOutput(
  pieces: string | Iterable<string>,
  target: OutputTarget,
  write: WriteBytes = writeSync,
  chunkChars = OUTPUT_CHUNK,
): Promise<void> {
  try {
    if (target.kind === 'stdout') for (const chunk of chunks(pieces, chunkChars)) await writeStdout(chunk);
    else writeFile(chunks(pieces, chunkChars), target, write);
  } catch (error) {
    if (error instanceof OutputClosed) throw error;
    throw new Error(`could not write ${target.kind === 'stdout' ? 'the output' : target.out}: ${(error as Error).message}`);
  }
}

function writeStdout(chunk: string): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(chunk, (error) => {
      if (!error) resolve();
      else reject((error as NodeJS.ErrnoException).code === 'EPIPE' ? new OutputClosed() : error);
    }),
  );
}

function writeFile(chunked: Iterable<string>, target: Exclude<OutputTarget, { kind: 'stdout' }>, write: WriteBytes): void {
  const replaced = target.kind === 'replace' ? target : null;
  const partial = replaced && join(dirname(replaced.path), `.${basename(replaced.path)}.${process.pid}.partial`);
  let fd: number | undefined;
  try {
    if (replaced) {
      fd = openSync(partial!, 'wx');
      if (replaced.mode !== null) fchmodSync(fd, replaced.mode);
    } else fd = openSync(target.path, 'w');
    for (const chunk of chunked) writeAll(fd, chunk, write);
    // A device or FIFO cannot be synced (EINVAL); a file is, before it takes the place of the one there.
    if (replaced) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (replaced) renameSync(partial!, replaced.path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    if (partial) rmSync(partial, { force: true });
    throw error;
  }
}

/** The pieces joined into chunks of about `chunkChars` characters (the last one possibly empty). */
function* chunks(pieces: string | Iterable<string>, chunkChars: number): Generator<string> {
  let buffered: string[] = [];
  let size = 0;
  for (const piece of typeof pieces === 'string' ? [pieces] : pieces) {
    buffered.push(piece);
    size += piece.length;
    if (size >= chunkChars) {
      yield buffered.join('');
      buffered = [];
      size = 0;
    }
  }
  yield buffered.join('');
}
