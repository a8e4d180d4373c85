/**
 * A model worker thread: one onnxruntime session of one model version, scoring the
 * batches the main thread sends (onnxruntime's `run` would otherwise block the event loop).
 */
import * as ort from 'onnxruntime-node';
import { move, workerData } from 'piscina';

export interface ModelWorkerData {
  bytes: Uint8Array;
  input: string;
  output: string;
  width: number;
  /** Column of the output holding the score when the output has one column per class. */
  column: number;
}

const data = workerData as ModelWorkerData;
const session = await ort.InferenceSession.create(data.bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });

export default async function score(task: { vectors: Float32Array; rows: number }): Promise<Float32Array> {
  const result = await session.run({ [data.input]: new ort.Tensor('float32', task.vectors, [task.rows, data.width]) });
  const output = result[data.output]!;
  const values = output.data as Float32Array;
  const columns = values.length / task.rows;
  const scores = new Float32Array(task.rows);
  for (let row = 0; row < task.rows; row++) scores[row] = values[row * columns + data.column]!;
  return move(scores) as unknown as Float32Array;
}
