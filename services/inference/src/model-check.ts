/**
 * The check of a model version against its manifest. onnxruntime creates a session and runs it
 * synchronously on the thread that asks, and a large model's session takes tens of
 * milliseconds or more to create: such a model is checked in a worker thread (see
 * `checkModelInWorker` in model.ts), a small one on the event loop.
 */
import * as ort from 'onnxruntime-node';
import type { ModelManifest } from './model.js';

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

export interface ModelCheckTask {
  manifest: ModelManifest;
  /** The ONNX file, in memory shared with the main thread. */
  bytes: Uint8Array;
}

/** Nothing when the version can serve, or why it cannot. */
export type ModelCheck = { ok: true } | { ok: false; reason: string };

/**
 * Loads the model in onnxruntime and checks it against its manifest: the input is float32
 * [rows, features], the output a float tensor with one score per row (or one column per
 * class), and test runs on one row and on two give finite scores. The caller releases the session.
 */
export async function openCheckedSession(manifest: ModelManifest, bytes: Uint8Array): Promise<ort.InferenceSession> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 }).catch((error: Error) => {
    throw new ModelLoadError(`onnxruntime cannot load ${manifest.file}: ${error.message}`);
  });
  try {
    await checkSession(manifest, session);
    return session;
  } catch (error) {
    await session.release();
    throw error;
  }
}

/** The check-worker's task: `openCheckedSession` on a copy of the bytes (onnxruntime takes no shared memory). */
export default async function checkModel({ manifest, bytes }: ModelCheckTask): Promise<ModelCheck> {
  try {
    await (await openCheckedSession(manifest, new Uint8Array(bytes))).release();
    return { ok: true };
  } catch (error) {
    // Returned, not thrown: an error crossing threads loses its class.
    if (error instanceof ModelLoadError) return { ok: false, reason: error.message };
    throw error;
  }
}

async function checkSession(manifest: ModelManifest, session: ort.InferenceSession): Promise<void> {
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
  // A test run on one row and on two: the smallest batch, and one of several rows. Each gives one
  // score row per input row, of the same width: an output that does not follow the batch (a mean
  // over its rows) would score each row with the others.
  const column = manifest.output_column ?? 0;
  let firstColumns: number | undefined;
  for (const rows of [1, 2]) {
    const result = await session
      .run({ [manifest.input]: new ort.Tensor('float32', new Float32Array(rows * width), [rows, width]) }, [manifest.output])
      .catch((error: Error) => {
        throw new ModelLoadError(`test run on ${rows} row${rows === 1 ? '' : 's'} failed: ${error.message}`);
      });
    const { data: values, dims } = result[manifest.output]!;
    const columns = values.length / rows;
    if (dims[0] !== rows || dims.length > 2 || columns !== (firstColumns ??= columns)) {
      throw new ModelLoadError(
        `output "${manifest.output}" has shape [${dims.join(', ')}] for ${rows} row${rows === 1 ? '' : 's'}: one score row per input row is expected ([rows], [rows, 1] or [rows, classes], as wide for any number of rows)`,
      );
    }
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
}
