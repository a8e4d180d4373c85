/**
 * One scoring run of an onnxruntime session: the rows' vectors in, one score per row out
 * (the output's `column` when it has one column per class). Shared by the model worker
 * threads and the event loop's inline runs (model.ts).
 */
import * as ort from 'onnxruntime-node';

export interface ModelIo {
  input: string;
  output: string;
  width: number;
  /** Column of the output holding the score when the output has one column per class. */
  column: number;
}

export async function runModel(session: ort.InferenceSession, io: ModelIo, vectors: Float32Array, rows: number): Promise<Float32Array> {
  const result = await session.run({ [io.input]: new ort.Tensor('float32', vectors, [rows, io.width]) });
  const values = result[io.output]!.data as Float32Array;
  const columns = values.length / rows;
  const scores = new Float32Array(rows);
  for (let row = 0; row < rows; row++) scores[row] = values[row * columns + io.column]!;
  return scores;
}

/**
 * The run's cost (µs) on `rows` zero rows: the median of 20 runs after 3 of warm-up. The await
 * adds an event-loop turn, not run time, but it is measured with it: that overstates the
 * cost, on the safe side.
 */
export async function medianRunMicros(session: ort.InferenceSession, io: ModelIo, rows: number): Promise<number> {
  const vectors = new Float32Array(rows * io.width);
  const times: number[] = [];
  for (let i = 0; i < 23; i++) {
    const started = process.hrtime.bigint();
    await runModel(session, io, vectors, rows);
    if (i >= 3) times.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return times.sort((a, b) => a - b)[times.length >> 1]!;
}
