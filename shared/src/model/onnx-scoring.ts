/**
 * Scores rows with a serialized ONNX model in onnxruntime, on this thread: for offline use
 * (validation, champion comparison, benchmarks), not for serving. The model takes one
 * float32 [rows, features] input; the score is `column` of its [rows], [rows, 1] or
 * [rows, classes] output, as the inference service reads it. onnxruntime's native library
 * is loaded on the first call, not by importing the shared package.
 */

export interface OnnxScoringTarget {
  input: string;
  output: string;
  /** Column of a [rows, classes] output (default 0). */
  column?: number;
}

/** Scores `rows` rows of `width` values laid out one after another in `data`. */
export async function scoreOnnx(
  bytes: Uint8Array,
  target: OnnxScoringTarget,
  data: Float32Array,
  rows: number,
  width: number,
): Promise<Float32Array> {
  if (data.length !== rows * width) throw new Error(`scoreOnnx: ${data.length} values for ${rows} rows of ${width}`);
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run({ [target.input]: new ort.Tensor('float32', data, [rows, width]) }, [target.output]);
    const values = result[target.output]?.data;
    if (!(values instanceof Float32Array)) throw new Error(`scoreOnnx: output "${target.output}" is not a float32 tensor`);
    const columns = values.length / rows;
    const column = target.column ?? 0;
    if (!Number.isInteger(columns) || column >= columns) {
      throw new Error(`scoreOnnx: output "${target.output}" has ${values.length} values for ${rows} rows; column ${column} does not exist`);
    }
    const scores = new Float32Array(rows);
    for (let i = 0; i < rows; i++) scores[i] = values[i * columns + column] as number;
    return scores;
  } finally {
    await session.release();
  }
}
