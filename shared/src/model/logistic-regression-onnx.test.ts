import { describe, it, expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import { predictLogisticRegression, trainLogisticRegression } from './logistic-regression.js';
import type { LogisticRegressionModel } from './logistic-regression.js';
import { MODEL_METADATA_KEYS, logisticRegressionToOnnx } from './logistic-regression-onnx.js';
import { readOnnxMetadata } from './onnx-graph.js';
import { createRandom } from './random.js';
import type { Random } from './random.js';

function randomModel(r: Random, f: number): LogisticRegressionModel {
  return {
    featureNames: Array.from({ length: f }, (_, j) => `f${j}`),
    mean: Array.from({ length: f }, () => 100 * r.normal()),
    scale: Array.from({ length: f }, () => 0.5 + 20 * r.next()),
    weights: Array.from({ length: f }, () => r.normal()),
    bias: r.normal(),
  };
}

/** Rows around the model's means so the scores spread over (0, 1) rather than saturate. */
function randomRows(r: Random, model: LogisticRegressionModel, n: number): Float32Array {
  const f = model.featureNames.length;
  const data = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) {
      data[i * f + j] = (model.mean[j] as number) + (model.scale[j] as number) * 1.5 * r.normal();
    }
  }
  return data;
}

async function onnxScores(bytes: Uint8Array, data: Float32Array, n: number, f: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    expect(session.inputNames).toEqual(['features']);
    expect(session.outputNames).toEqual(['score']);
    const results = await session.run({ features: new ort.Tensor('float32', data, [n, f]) });
    const score = results.score as ort.Tensor;
    expect(score.type).toBe('float32');
    expect(score.dims).toEqual([n, 1]);
    return score.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('logisticRegressionToOnnx', () => {
  it.each([1, 7, 256])('scores a batch of %i rows like predictLogisticRegression (1e-5)', async (n) => {
    const r = createRandom(1000 + n);
    const f = 12;
    const model = randomModel(r, f);
    const data = randomRows(r, model, n);
    const bytes = logisticRegressionToOnnx(model, { name: 'fraud-lr', version: '1' });
    const scores = await onnxScores(bytes, data, n, f);

    let maxDiff = 0;
    const expected: number[] = [];
    for (let i = 0; i < n; i++) {
      // Reference on the same float32-rounded inputs the runtime sees.
      const p = predictLogisticRegression(model, data.subarray(i * f, (i + 1) * f));
      expected.push(p);
      maxDiff = Math.max(maxDiff, Math.abs(p - (scores[i] as number)));
    }
    expect(maxDiff).toBeLessThan(1e-5);
    // The comparison is not trivial: the scores are spread out, not all saturated at 0 or 1.
    if (n >= 7) {
      expect(expected.some((p) => p > 0.1 && p < 0.9)).toBe(true);
      expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(0.3);
    }
  });

  it('exports a trained model with the same scores', async () => {
    const r = createRandom(5);
    const n = 500;
    const rows = Array.from({ length: n }, () => [50 + 10 * r.normal(), r.normal(), 3]);
    const labels = rows.map((row) => (r.next() < 1 / (1 + Math.exp(-((row[0] as number) - 50) / 5)) ? 1 : 0));
    const model = trainLogisticRegression(rows, labels, { featureNames: ['a', 'b', 'const'], seed: 1 });
    const data = Float32Array.from(rows.flat());
    const scores = await onnxScores(logisticRegressionToOnnx(model, { name: 'm', version: '2' }), data, n, 3);
    for (let i = 0; i < n; i++) {
      expect(Math.abs((scores[i] as number) - predictLogisticRegression(model, data.subarray(i * 3, i * 3 + 3)))).toBeLessThan(1e-5);
    }
  });

  it('writes name, version, model type, feature names and extra metadata', () => {
    const model = randomModel(createRandom(1), 3);
    model.featureNames = ['amount', 'txn_count_1h', 'merchant "risk"'];
    const bytes = logisticRegressionToOnnx(model, {
      name: 'fraud-lr',
      version: '2026-11-28.1',
      metadata: { trained_rows: '8000', validation_auc: '0.95' },
    });
    const meta = readOnnxMetadata(bytes);
    expect(meta).toEqual({
      [MODEL_METADATA_KEYS.name]: 'fraud-lr',
      [MODEL_METADATA_KEYS.version]: '2026-11-28.1',
      [MODEL_METADATA_KEYS.type]: 'logistic_regression',
      [MODEL_METADATA_KEYS.featureNames]: JSON.stringify(model.featureNames),
      trained_rows: '8000',
      validation_auc: '0.95',
    });
    expect(JSON.parse(meta[MODEL_METADATA_KEYS.featureNames] ?? '')).toEqual(model.featureNames);
  });

  it('rejects an inconsistent model and reserved metadata keys', () => {
    const good = randomModel(createRandom(2), 3);
    const meta = { name: 'm', version: '1' };
    expect(() => logisticRegressionToOnnx({ ...good, weights: [1, 2] }, meta)).toThrow(/weights has 2 values, featureNames has 3/);
    expect(() => logisticRegressionToOnnx({ ...good, scale: [1, 0, 1] }, meta)).toThrow(/scale\[1\] is 0, must be > 0/);
    expect(() => logisticRegressionToOnnx({ ...good, bias: NaN }, meta)).toThrow(/bias is NaN/);
    expect(() => logisticRegressionToOnnx(good, { name: '', version: '1' })).toThrow(/meta.name must not be empty/);
    expect(() => logisticRegressionToOnnx(good, { ...meta, metadata: { [MODEL_METADATA_KEYS.version]: 'x' } })).toThrow(/is reserved/);
  });
});
