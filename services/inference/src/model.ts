/**
 * A model version from the registry: `manifest.json` (name, version, features in input
 * order with their types and defaults, sha256 of the ONNX file, training metadata) and the ONNX file. Loading checks the
 * hash, that the model's input and output fit the manifest and a test run, so a broken
 * version never replaces a working one; the version then scores in worker threads, with
 * concurrent requests batched together. onnxruntime loads a model synchronously on the thread
 * that asks, so the checks and the workers' loads happen off the event loop (model-check.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import type * as ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import type { Static } from 'typebox';
import {
  FEATURE_TYPES,
  FeatureTypeSchema,
  loadConfig,
  MODEL_NAME_MAX_LENGTH,
  MODEL_VERSION_MAX_LENGTH,
  recordValidator,
  type Config,
  Type,
} from '@tributary/shared';
import { MicroBatcher, type RunFailure } from './batcher.js';
import { ModelLoadError, openCheckedSession, type ModelCheck, type ModelCheckTask } from './model-check.js';
import { medianRunMicros, runModel, type ModelIo } from './model-run.js';
import type { ModelWorkerData } from './model-worker.js';

export { ModelLoadError };

/**
 * Names that are safe as one path segment (no separators, not `.` or `..`, no hidden files) and
 * as a key of a plain object (not `__proto__`, `constructor` or `prototype`).
 */
export const SAFE_NAME = '^(?!(?:__proto__|constructor|prototype)$)[A-Za-z0-9_][A-Za-z0-9_.-]*$';

export const ModelManifestSchema = Type.Object({
  name: Type.String({ maxLength: MODEL_NAME_MAX_LENGTH, pattern: SAFE_NAME }),
  version: Type.String({ maxLength: MODEL_VERSION_MAX_LENGTH, pattern: SAFE_NAME }),
  format: Type.Literal('onnx'),
  file: Type.String({ maxLength: 128, pattern: SAFE_NAME, description: 'the ONNX file, beside the manifest' }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  input: Type.String({ minLength: 1, description: 'name of the float32 [rows, features] input' }),
  output: Type.String({ minLength: 1, description: 'name of the output holding the scores: [rows], [rows, 1] or [rows, classes]' }),
  output_column: Type.Optional(Type.Integer({ minimum: 0, description: 'column of a [rows, classes] output to serve (default 0)' })),
  features: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'feature references in input order' }),
  defaults: Type.Optional(
    Type.Record(Type.String(), Type.Union([Type.Number(), Type.Boolean(), Type.String({ maxLength: 256 })]), {
      description: "per-feature defaults, overriding the groups': a number, a boolean, or a category's value",
    }),
  ),
  feature_types: Type.Optional(
    Type.Record(Type.String(), FeatureTypeSchema, {
      description: 'per-feature type (number, integer, boolean, category with its vocabulary); a feature without one is a number',
    }),
  ),
  threshold: Type.Number({ minimum: 0, maximum: 1 }),
  created_at: Type.String(),
  training: Type.Record(Type.String(), Type.Unknown()),
  profile: Type.Optional(Type.Unknown({ description: 'reference profile of the training data, for the monitor' })),
});
export type ModelManifest = Static<typeof ModelManifestSchema>;

export interface ModelVersion {
  dir: string;
  manifest: ModelManifest;
  bytes: Buffer;
}

const validateManifest = recordValidator<ModelManifest>(ModelManifestSchema);

export function parseManifest(text: string | Buffer, where: string): ModelManifest {
  const decoded = validateManifest.decode(Buffer.isBuffer(text) ? text : Buffer.from(text));
  if (!decoded.ok) throw new ModelLoadError(`${where}: ${unknownFeatureType(text) ?? decoded.detail}`);
  return decoded.value;
}

/** A clearer word than the schema's ("must be equal to constant") for a feature type that does not exist. */
function unknownFeatureType(text: string | Buffer): string | null {
  let types: unknown;
  try {
    types = (JSON.parse(text.toString()) as { feature_types?: unknown }).feature_types;
  } catch {
    return null;
  }
  if (typeof types !== 'object' || types === null) return null;
  for (const [ref, spec] of Object.entries(types)) {
    const type = (spec as { type?: unknown } | null)?.type;
    if (!(FEATURE_TYPES as readonly unknown[]).includes(type)) {
      return `feature_types.${ref}.type must be one of ${FEATURE_TYPES.join(', ')} (got ${JSON.stringify(type) ?? 'none'})`;
    }
  }
  return null;
}

/** Reads a version directory and checks the file's hash against the manifest. */
export async function readModelVersion(dir: string): Promise<ModelVersion> {
  const read = await readModelFiles(dir);
  await checkHash(read.manifest, read.bytes);
  return read;
}

/**
 * Reads a version directory without checking the file's hash: for a version about to be
 * registered, which `ModelRegistry.register` checks (a large file is hashed once).
 */
export async function readModelFiles(dir: string): Promise<ModelVersion> {
  const manifestFile = join(dir, 'manifest.json');
  const text = await readFile(manifestFile).catch((error: Error) => {
    throw new ModelLoadError(`cannot read ${manifestFile}: ${error.message}`);
  });
  const manifest = parseManifest(text, manifestFile);
  const bytes = await readFile(join(dir, manifest.file)).catch((error: Error) => {
    throw new ModelLoadError(`cannot read model file ${join(dir, manifest.file)}: ${error.message}`);
  });
  return { dir, manifest, bytes };
}

export async function checkHash(manifest: ModelManifest, bytes: Buffer): Promise<void> {
  const sha256 = await sha256Hex(bytes);
  if (sha256 !== manifest.sha256) {
    throw new ModelLoadError(`${manifest.file}: sha256 ${sha256} does not match the manifest's ${manifest.sha256}`);
  }
}

/**
 * A model's bytes are hashed or copied at most this many at a time, between event-loop turns:
 * 16 MB at once held the event loop 10–30 ms (hashed, or copied for a worker thread).
 */
const CHUNK_BYTES = 1 << 20;

/** Calls `each` on the bytes a chunk at a time, an event-loop turn between chunks. */
async function inChunks(bytes: Uint8Array, each: (chunk: Uint8Array, offset: number) => void): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
    if (offset > 0) await setImmediate();
    each(bytes.subarray(offset, offset + CHUNK_BYTES), offset);
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = createHash('sha256');
  await inChunks(bytes, (chunk) => hash.update(chunk));
  return hash.digest('hex');
}

/**
 * A copy of the bytes in memory shared with worker threads, which then receive it without a
 * copy (handing them the Buffer would copy it on this thread, once per thread).
 */
async function shareBytes(bytes: Uint8Array): Promise<Uint8Array> {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  await inChunks(bytes, (chunk, offset) => shared.set(chunk, offset));
  return shared;
}

/** How long the thread checking versions waits idle for the next before it stops. */
const CHECKER_IDLE_MS = 10_000;
let checker: Piscina | null = null;

/**
 * Loads the model in onnxruntime in a worker thread and checks it against its manifest (see
 * model-check.ts). One thread, started when first needed, checks the large versions of the process.
 */
async function checkModelInWorker(manifest: ModelManifest, bytes: Uint8Array): Promise<void> {
  checker ??= new Piscina({
    filename: new URL('./model-check-entry.mjs', import.meta.url).href,
    minThreads: 0,
    maxThreads: 1,
    idleTimeout: CHECKER_IDLE_MS,
  });
  const check = (await checker.run({ manifest, bytes } satisfies ModelCheckTask)) as ModelCheck;
  if (!check.ok) throw new ModelLoadError(check.reason);
}

/**
 * Checks the model against its manifest (model-check.ts): a small one (at most
 * INLINE_MAX_MODEL_BYTES) on this thread, where it loads in a few milliseconds, returning the
 * checked session (the caller releases it); a larger one in the check worker, returning null.
 */
async function checkModel(manifest: ModelManifest, bytes: Buffer, shared: () => Promise<Uint8Array>): Promise<ort.InferenceSession | null> {
  if (bytes.length <= INLINE_MAX_MODEL_BYTES) return openCheckedSession(manifest, bytes);
  await checkModelInWorker(manifest, await shared());
  return null;
}

/**
 * Loads the model in onnxruntime and checks it against its manifest: the input is float32
 * [rows, features], the output a float tensor with one score per row (or one column per
 * class), and test runs on one row and on two give finite scores. A large model is checked in
 * a worker thread.
 */
export async function inspectModel(manifest: ModelManifest, bytes: Buffer): Promise<void> {
  await (await checkModel(manifest, bytes, () => shareBytes(bytes)))?.release();
}

export interface ScoringOptions {
  /** Worker threads running the model. */
  threads: number;
  /**
   * A batch whose run is measured to cost at most this (µs) is scored on the event loop: for
   * a tiny model, handing the rows to a worker costs the event loop as much as the run, and
   * the worker's wake-up adds latency. 0: every batch in a worker thread.
   */
  inlineMaxMicros?: number;
  maxBatchRows: number;
  maxDelayMs: number;
  maxQueuedRows: number;
  /**
   * Longest run of a batch (ms): beyond, its requests fail with 503 MODEL_UNAVAILABLE; the run
   * ends on its worker thread while a spare thread takes the next batches. Unset or 0: no deadline.
   */
  runTimeoutMs?: number;
  /** Told the size of every batch scored. */
  onBatch?(rows: number): void;
  /** Told of every version started, before it scores a request. */
  onStarted?(model: ModelManifest): void;
  /** Told of every batch of a version whose run failed (its worker thread died, say) or timed out. */
  onRunFailure?(model: ModelManifest, reason: RunFailure): void;
}

/** The scoring settings of a configuration (`MODEL_*`). */
export function scoringOptions(config: Config): ScoringOptions {
  return {
    threads: config.MODEL_THREADS,
    inlineMaxMicros: config.MODEL_INLINE_MAX_US,
    maxBatchRows: config.MODEL_BATCH_MAX_ROWS,
    maxDelayMs: config.MODEL_BATCH_DELAY_MS,
    maxQueuedRows: config.MODEL_QUEUE_MAX_ROWS,
    runTimeoutMs: config.MODEL_RUN_TIMEOUT_MS,
  };
}

/** The configuration's defaults, declared once in `shared/src/config.ts`. */
export const DEFAULT_SCORING: ScoringOptions = scoringOptions(loadConfig({}));

/**
 * Models larger than this are never opened on the event loop (a long load there, a second copy
 * in memory, and a long measurement): they are checked in a worker thread and scored in the
 * worker pool. A model this small loads in a few milliseconds.
 */
const INLINE_MAX_MODEL_BYTES = 1 << 20;

/**
 * A spare scoring thread (started while overdue runs hold the others) stops after this long
 * idle; the pool keeps `threads` threads.
 */
const SPARE_THREAD_IDLE_MS = 60_000;

export interface LoadedModel {
  manifest: ModelManifest;
  /** Scores `rows` input vectors laid out one after another. */
  score(vectors: Float32Array, rows: number): Promise<Float32Array>;
  /** Rows waiting for a worker. */
  readonly queued: number;
  /** Largest batch scored on the event loop (0: all in worker threads). */
  readonly inlineMaxRows: number;
  /** Worker threads started for the batches too large to score inline (0: none needed). */
  readonly workerThreads: number;
  /** Waits for the rows already queued, then stops the workers. */
  close(): Promise<void>;
}

/**
 * Checks a version (hash aside) and starts it. Nothing heavy happens on the event loop: a large
 * model is checked in a worker thread and the workers load their own copies; only a small one
 * is opened on this thread, and kept there when its runs are cheap enough to score inline.
 */
export async function startModel(version: ModelVersion, options: ScoringOptions = DEFAULT_SCORING): Promise<LoadedModel> {
  const { manifest, bytes } = version;
  const width = manifest.features.length;
  const io: ModelIo = { input: manifest.input, output: manifest.output, width, column: manifest.output_column ?? 0 };
  // Copied into shared memory once, when a thread needs it: the check worker's, the scoring workers'.
  let copy: Promise<Uint8Array> | undefined;
  const shared = () => (copy ??= shareBytes(bytes));
  const checked = await checkModel(manifest, bytes, shared);
  const inline = checked ? await inlineRunner(checked, io, options) : NOT_INLINE;
  // No worker when every batch the batcher can form is scored on the event loop.
  const pool =
    inline.maxRows >= options.maxBatchRows
      ? null
      : new Piscina({
          filename: new URL('./model-worker-entry.mjs', import.meta.url).href,
          minThreads: options.threads,
          // Spare threads, for the batches that come while overdue runs hold theirs (see below).
          maxThreads: 2 * options.threads,
          idleTimeout: SPARE_THREAD_IDLE_MS,
          workerData: { bytes: await shared(), ...io } satisfies ModelWorkerData,
        });
  // Runs handed to the pool and not ended. A thread is never terminated inside onnxruntime (a run,
  // or the model's load with a thread's first task, model-worker.ts): a thread terminated there
  // aborts the whole process. An overdue run (past `runTimeoutMs`) ends on its thread, which the
  // pool then reuses; closing waits for it.
  const running = new Set<Promise<unknown>>();
  const inPool = (vectors: Float32Array, rows: number): Promise<Float32Array> => {
    // Vectors are copied to the worker, not transferred: callers still read them afterwards.
    const run = pool!.run({ vectors, rows }) as Promise<Float32Array>;
    const ended: Promise<unknown> = run.then(
      () => running.delete(ended),
      () => running.delete(ended),
    );
    running.add(ended);
    return run;
  };
  const batcher = new MicroBatcher(
    { run: (vectors, rows) => (rows <= inline.maxRows ? runModel(inline.session!, io, vectors, rows) : inPool(vectors, rows)) },
    {
      width,
      concurrency: options.threads,
      maxBatchRows: options.maxBatchRows,
      maxDelayMs: options.maxDelayMs,
      maxQueuedRows: options.maxQueuedRows,
      onBatch: options.onBatch,
      model: `model ${manifest.name} version ${manifest.version}`,
      runTimeoutMs: options.runTimeoutMs,
      onRunFailure: (reason) => options.onRunFailure?.(manifest, reason),
    },
  );
  const close = async () => {
    await batcher.drained();
    await Promise.all(running);
    await pool?.destroy();
    await inline.session?.release();
  };
  // A worker loads the model with its first task: a row scored by each, handed out at once, proves they serve.
  if (pool) {
    const probes = await Promise.all(Array.from({ length: options.threads }, () => inPool(new Float32Array(width), 1))).catch(
      async (error: Error) => {
        await close();
        throw new ModelLoadError(`the model worker failed: ${error.message}`);
      },
    );
    if (probes.some((probe) => probe.length !== 1 || !Number.isFinite(probe[0]))) {
      await close();
      throw new ModelLoadError('the model worker did not return one finite score');
    }
  }
  options.onStarted?.(manifest);
  return {
    manifest,
    score: (vectors, rows) => batcher.score(vectors, rows),
    get queued() {
      return batcher.queued;
    },
    inlineMaxRows: inline.maxRows,
    workerThreads: pool ? options.threads : 0,
    close,
  };
}

const NOT_INLINE = { session: null, maxRows: 0 };

/**
 * Measures the model's run on the checked session, on this thread, for one row and for a full
 * batch, and keeps the session when some batches cost at most `inlineMaxMicros`: it then
 * scores those (up to `maxRows` rows, the cost taken as linear in the rows) on the event loop.
 * Otherwise the session is released.
 */
async function inlineRunner(
  session: ort.InferenceSession,
  io: ModelIo,
  options: ScoringOptions,
): Promise<{ session: ort.InferenceSession | null; maxRows: number }> {
  const limit = options.inlineMaxMicros ?? 0;
  try {
    if (limit > 0) {
      const full = Math.max(2, options.maxBatchRows);
      const one = await medianRunMicros(session, io, 1);
      const perRow = Math.max(0, ((await medianRunMicros(session, io, full)) - one) / (full - 1));
      const maxRows = one > limit ? 0 : perRow === 0 ? full : Math.min(full, 1 + Math.floor((limit - one) / perRow));
      if (maxRows > 0) return { session, maxRows };
    }
  } catch (error) {
    await session.release();
    throw error;
  }
  await session.release();
  return NOT_INLINE;
}

/** Reads, checks and starts the version in `dir`. */
export async function loadModel(dir: string, options: ScoringOptions = DEFAULT_SCORING): Promise<LoadedModel> {
  return startModel(await readModelVersion(dir), options);
}
