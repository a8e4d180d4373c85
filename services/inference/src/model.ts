/**
 * A model version from the registry: `manifest.json` (name, version, features in input
 * order with their types and defaults, sha256 of the ONNX file, training metadata) and the ONNX file. Loading checks the
 * hash, that the model's input and output fit the manifest and a test run, so a broken
 * version never replaces a working one; the version then scores in worker threads, with
 * concurrent requests batched together.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import Type, { type Static } from 'typebox';
import { FEATURE_TYPES, FeatureTypeSchema, loadConfig, recordValidator, type Config } from '@tributary/shared';
import { MicroBatcher, type RunFailure } from './batcher.js';
import { runModel, type ModelIo } from './model-run.js';
import type { ModelWorkerData } from './model-worker.js';

/**
 * Names that are safe as one path segment (no separators, not `.` or `..`, no hidden files) and
 * as a key of a plain object (not `__proto__`, `constructor` or `prototype`).
 */
export const SAFE_NAME = '^(?!(?:__proto__|constructor|prototype)$)[A-Za-z0-9_][A-Za-z0-9_.-]*$';

export const ModelManifestSchema = Type.Object({
  name: Type.String({ maxLength: 128, pattern: SAFE_NAME }),
  version: Type.String({ maxLength: 64, pattern: SAFE_NAME }),
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

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

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
  const manifestFile = join(dir, 'manifest.json');
  const text = await readFile(manifestFile).catch((error: Error) => {
    throw new ModelLoadError(`cannot read ${manifestFile}: ${error.message}`);
  });
  const manifest = parseManifest(text, manifestFile);
  const bytes = await readFile(join(dir, manifest.file)).catch((error: Error) => {
    throw new ModelLoadError(`cannot read model file ${join(dir, manifest.file)}: ${error.message}`);
  });
  checkHash(manifest, bytes);
  return { dir, manifest, bytes };
}

export function checkHash(manifest: ModelManifest, bytes: Buffer): void {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.sha256) {
    throw new ModelLoadError(`${manifest.file}: sha256 ${sha256} does not match the manifest's ${manifest.sha256}`);
  }
}

/**
 * Loads the model in onnxruntime on this thread and checks it against its manifest: the
 * input is float32 [rows, features], the output a float tensor with one score per row (or one
 * column per class), and test runs on one row and on two give finite scores.
 */
export async function inspectModel(manifest: ModelManifest, bytes: Buffer): Promise<void> {
  await (await openCheckedSession(manifest, bytes)).release();
}

/** `inspectModel`, keeping the session it checked (the caller releases it). */
async function openCheckedSession(manifest: ModelManifest, bytes: Buffer): Promise<ort.InferenceSession> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 }).catch((error: Error) => {
    throw new ModelLoadError(`onnxruntime cannot load ${manifest.file}: ${error.message}`);
  });
  try {
    const width = manifest.features.length;
    const input = session.inputMetadata.find((m) => m.name === manifest.input);
    if (!input) throw new ModelLoadError(`the model has no input "${manifest.input}" (its inputs: ${session.inputNames.join(', ')})`);
    if (session.inputNames.length !== 1) {
      throw new ModelLoadError(`the model has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); one is supported`);
    }
    if (!input.isTensor || input.type !== 'float32') throw new ModelLoadError(`input "${manifest.input}" is not a float32 tensor`);
    const [rows, last] = input.shape;
    if (input.shape.length !== 2 || (typeof last === 'number' && last !== width)) {
      throw new ModelLoadError(
        `input "${manifest.input}" has shape [${input.shape.join(', ')}]; the manifest lists ${width} features, so [rows, ${width}] is expected`,
      );
    }
    // Batches have any number of rows, down to one: a fixed batch size cannot serve.
    if (typeof rows === 'number' && rows !== -1) {
      throw new ModelLoadError(
        `input "${manifest.input}" has a fixed batch dimension (shape [${input.shape.join(', ')}]); its first dimension must be symbolic or -1 (any number of rows)`,
      );
    }
    const output = session.outputMetadata.find((m) => m.name === manifest.output);
    if (!output) throw new ModelLoadError(`the model has no output "${manifest.output}" (its outputs: ${session.outputNames.join(', ')})`);
    if (!output.isTensor) throw new ModelLoadError(`output "${manifest.output}" is not a tensor (a map or sequence, such as a ZipMap)`);
    if (output.type !== 'float32' && output.type !== 'float64') {
      throw new ModelLoadError(`output "${manifest.output}" holds ${output.type} values; scores must be float32 or float64`);
    }
    // A test run on one row and on two: the smallest batch, and one of several rows.
    const column = manifest.output_column ?? 0;
    for (const rows of [1, 2]) {
      const result = await session
        .run({ [manifest.input]: new ort.Tensor('float32', new Float32Array(rows * width), [rows, width]) }, [manifest.output])
        .catch((error: Error) => {
          throw new ModelLoadError(`test run on ${rows} row${rows === 1 ? '' : 's'} failed: ${error.message}`);
        });
      const values = result[manifest.output]!.data;
      const columns = values.length / rows;
      if (!Number.isInteger(columns) || columns < 1 || column >= columns) {
        throw new ModelLoadError(
          `output "${manifest.output}" has ${values.length} values for ${rows} row${rows === 1 ? '' : 's'}; column ${column} cannot be served`,
        );
      }
      for (let row = 0; row < rows; row++) {
        const score = Number(values[row * columns + column]);
        if (!Number.isFinite(score)) throw new ModelLoadError(`test run gave a non-finite score (${score})`);
      }
    }
    return session;
  } catch (error) {
    await session.release();
    throw error;
  }
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
   * Longest run of a batch (ms): beyond, its requests fail with 503 MODEL_UNAVAILABLE and its
   * worker thread is replaced. Unset or 0: no deadline.
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

/** Models larger than this are never tried on the event loop (a second copy in memory, and a long measurement). */
const INLINE_MAX_MODEL_BYTES = 1 << 20;

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

/** Starts a checked version in its worker threads. */
export async function startModel(version: ModelVersion, options: ScoringOptions = DEFAULT_SCORING): Promise<LoadedModel> {
  const { manifest, bytes } = version;
  const width = manifest.features.length;
  const io: ModelIo = { input: manifest.input, output: manifest.output, width, column: manifest.output_column ?? 0 };
  const inline = await inlineRunner(await openCheckedSession(manifest, bytes), bytes, io, options);
  // No worker when every batch the batcher can form is scored on the event loop.
  const pool =
    inline.maxRows >= options.maxBatchRows
      ? null
      : new Piscina({
          filename: new URL('./model-worker-entry.mjs', import.meta.url).href,
          minThreads: options.threads,
          maxThreads: options.threads,
          idleTimeout: Infinity,
          workerData: { bytes: new Uint8Array(bytes), ...io } satisfies ModelWorkerData,
        });
  const batcher = new MicroBatcher(
    {
      run: (vectors, rows, signal) =>
        rows <= inline.maxRows
          ? runModel(inline.session!, io, vectors, rows)
          : // Vectors are copied to the worker, not transferred: callers still read them afterwards.
            // An aborted run's worker thread is terminated, and the pool starts another.
            (pool!.run({ vectors, rows }, { signal }) as Promise<Float32Array>),
    },
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
    await pool?.destroy();
    await inline.session?.release();
  };
  // The workers load the model as they start: one scored row proves they serve.
  if (pool) {
    const probe = await (pool.run({ vectors: new Float32Array(width), rows: 1 }) as Promise<Float32Array>).catch(async (error: Error) => {
      await close();
      throw new ModelLoadError(`the model worker failed: ${error.message}`);
    });
    if (probe.length !== 1 || !Number.isFinite(probe[0])) {
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

/**
 * Measures the model's run on the checked session, on this thread, for one row and for a full
 * batch (medians after a warm-up), and keeps the session when some batches cost at most
 * `inlineMaxMicros`: it then scores those (up to `maxRows` rows, the cost taken as linear in
 * the rows) on the event loop. Otherwise the session is released.
 */
async function inlineRunner(
  session: ort.InferenceSession,
  bytes: Buffer,
  io: ModelIo,
  options: ScoringOptions,
): Promise<{ session: ort.InferenceSession | null; maxRows: number }> {
  const limit = options.inlineMaxMicros ?? 0;
  if (limit <= 0 || bytes.length > INLINE_MAX_MODEL_BYTES) {
    await session.release();
    return { session: null, maxRows: 0 };
  }
  try {
    return await measureInline(session, io, options, limit);
  } catch (error) {
    await session.release();
    throw error;
  }
}

async function measureInline(
  session: ort.InferenceSession,
  io: ModelIo,
  options: ScoringOptions,
  limit: number,
): Promise<{ session: ort.InferenceSession | null; maxRows: number }> {
  const cost = async (rows: number) => {
    const vectors = new Float32Array(rows * io.width);
    const times: number[] = [];
    for (let i = 0; i < 23; i++) {
      const started = process.hrtime.bigint();
      await runModel(session, io, vectors, rows);
      if (i >= 3) times.push(Number(process.hrtime.bigint() - started) / 1000);
    }
    return times.sort((a, b) => a - b)[times.length >> 1]!;
  };
  // The run alone: runModel's await adds an event-loop turn, not run time, but it is measured
  // with it; that overstates the cost, on the safe side.
  const full = Math.max(2, options.maxBatchRows);
  const one = await cost(1);
  const perRow = Math.max(0, ((await cost(full)) - one) / (full - 1));
  const maxRows = one > limit ? 0 : perRow === 0 ? full : Math.min(full, 1 + Math.floor((limit - one) / perRow));
  if (maxRows === 0) {
    await session.release();
    return { session: null, maxRows: 0 };
  }
  return { session, maxRows };
}

/** Reads, checks and starts the version in `dir`. */
export async function loadModel(dir: string, options: ScoringOptions = DEFAULT_SCORING): Promise<LoadedModel> {
  return startModel(await readModelVersion(dir), options);
}
