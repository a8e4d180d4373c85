/**
 * A model worker thread: one onnxruntime session of one model version, scoring the
 * batches the main thread sends (onnxruntime's `run` would otherwise block the event loop).
 */
import * as ort from 'onnxruntime-node';
import { move, workerData } from 'piscina';
import { runModel, type ModelIo } from './model-run.js';

export interface ModelWorkerData extends ModelIo {
  /** The ONNX file, in memory shared with the main thread. */
  bytes: Uint8Array;
}

const data = workerData as ModelWorkerData;
// onnxruntime takes no shared memory: a copy of this thread's own.
const session = await ort.InferenceSession.create(new Uint8Array(data.bytes), { intraOpNumThreads: 1, interOpNumThreads: 1 });

export default async function score(task: { vectors: Float32Array; rows: number }): Promise<Float32Array> {
  return move(await runModel(session, data, task.vectors, task.rows)) as unknown as Float32Array;
}
