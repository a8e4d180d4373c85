import { describe, expect, it } from 'vitest';
import { BATCH_DIM, OnnxGraphBuilder } from './onnx-graph.js';
import { scoreOnnx } from './onnx-scoring.js';

/** Two inputs columns -> Softmax over [x0, x1]: a [rows, 2] output, one column per class. */
function twoClassModel(): Uint8Array {
  return new OnnxGraphBuilder({ name: 'two-class' })
    .addInput('input', 'float', [BATCH_DIM, 2])
    .addOutput('probabilities', 'float', [BATCH_DIM, 2])
    .addNode({ opType: 'Softmax', inputs: ['input'], outputs: ['probabilities'] })
    .toBytes();
}

describe('scoreOnnx', () => {
  it('reads the chosen column of a [rows, classes] output', async () => {
    const data = Float32Array.from([0, 0, 0, Math.log(3)]);
    const p1 = await scoreOnnx(twoClassModel(), { input: 'input', output: 'probabilities', column: 1 }, data, 2, 2);
    expect(p1[0]).toBeCloseTo(0.5, 6);
    expect(p1[1]).toBeCloseTo(0.75, 6);
    const p0 = await scoreOnnx(twoClassModel(), { input: 'input', output: 'probabilities' }, data, 2, 2);
    expect(p0[1]).toBeCloseTo(0.25, 6);
  });

  it('rejects a column the output does not have and a mis-sized input', async () => {
    const data = new Float32Array(4);
    await expect(scoreOnnx(twoClassModel(), { input: 'input', output: 'probabilities', column: 2 }, data, 2, 2)).rejects.toThrow(
      /column 2 does not exist/,
    );
    await expect(scoreOnnx(twoClassModel(), { input: 'input', output: 'probabilities' }, data, 3, 2)).rejects.toThrow(
      /4 values for 3 rows of 2/,
    );
  });
});
