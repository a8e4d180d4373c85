/**
 * A model worker thread: one onnxruntime session of one model version, scoring the
 * batches the main thread sends (onnxruntime's `run` would otherwise block the event loop).
 *
 * onnxruntime is loaded, and the session created, within the thread's first task, not as the
 * thread starts: a thread terminated inside onnxruntime's native code (a load, a run) aborts the
 * whole process, and the pool only waits for tasks before it terminates its threads (model.ts).
 * A thread that never had a task holds nothing of onnxruntime.
 */
import type * as ort from 'onnxruntime-node';
import { move, workerData } from 'piscina';
import type { ModelIo, runModel } from './model-run.js';

export interface ModelWorkerData extends ModelIo {
  /** The ONNX file, in memory shared with the main thread. */
  bytes: Uint8Array;
}

const data = workerData as ModelWorkerData;

interface Scorer {
  session: ort.InferenceSession;
  run: typeof runModel;
}
let scorer: Promise<Scorer> | undefined;

async function load(): Promise<Scorer> {
  const [{ InferenceSession }, modelRun] = await Promise.all([import('onnxruntime-node'), import('./model-run.js')]);
  // onnxruntime takes no shared memory: a copy of this thread's own.
  const session = await InferenceSession.create(new Uint8Array(data.bytes), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  return { session, run: modelRun.runModel };
}

export default async function score(task: { vectors: Float32Array; rows: number }): Promise<Float32Array> {
  const { session, run } = await (scorer ??= load());
  return move(await run(session, data, task.vectors, task.rows)) as unknown as Float32Array;
}
