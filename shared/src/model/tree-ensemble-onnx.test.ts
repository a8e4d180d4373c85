import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { predictGradientBoostingBatch, trainGradientBoosting, type GradientBoostingModel } from './gradient-boosting.js';
import { MODEL_METADATA_KEYS } from './logistic-regression-onnx.js';
import { readOnnxMetadata } from './onnx-graph.js';
import { createRandom, type Random } from './random.js';
import { gradientBoostingToOnnx } from './tree-ensemble-onnx.js';

const F = 6;
const featureNames = Array.from({ length: F }, (_, j) => `f${j}`);

/** A non-linear target over features of different scales, with missing values in two features. */
function dataset(r: Random, n: number): { rows: number[][]; labels: number[] } {
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    // Doubles that float32 must round: the model rounds them exactly like the runtime's input tensor.
    const row = [r.normal(), 1000 * r.normal(), r.int(5), 1e-3 * r.next(), r.normal(), r.normal()];
    if (r.next() < 0.1) row[0] = NaN;
    if (r.next() < 0.2) row[2] = NaN;
    const z =
      (Number.isNaN(row[0]!) ? 1 : Math.sin(3 * row[0]!)) + (row[1]! > 0 ? 0.8 : -0.8) * (row[4]! > 0 ? 1 : -1) + (row[2]! === 2 ? 1 : 0);
    rows.push(row);
    labels.push(r.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0);
  }
  return { rows, labels };
}

async function onnxScores(bytes: Uint8Array, data: Float32Array, n: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    expect(session.inputNames).toEqual(['features']);
    expect(session.outputNames).toEqual(['score']);
    const results = await session.run({ features: new ort.Tensor('float32', data, [n, F]) });
    const score = results.score as ort.Tensor;
    expect(score.type).toBe('float32');
    expect(score.dims).toEqual([n, 1]);
    return score.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** The float32 values one step either side of `v`. */
function float32Neighbours(v: number): number[] {
  const f = new Float32Array([v, v]);
  const bits = new Int32Array(f.buffer);
  if (v === 0) return [-1.401298464324817e-45, 1.401298464324817e-45];
  bits[0] = (bits[0] as number) - 1;
  bits[1] = (bits[1] as number) + 1;
  return [f[0] as number, f[1] as number];
}

/** Rows that put each split's feature exactly on its threshold, one float32 step either side, and NaN. */
function boundaryRows(model: GradientBoostingModel, r: Random, base: number[][]): number[][] {
  const out: number[][] = [];
  for (const tree of model.trees.slice(0, 20)) {
    tree.feature.forEach((j, k) => {
      if (j < 0) return;
      const t = tree.threshold[k] as number;
      for (const v of [t, ...float32Neighbours(t), NaN]) {
        const row = [...(base[r.int(base.length)] as number[])];
        row[j] = v;
        out.push(row);
      }
    });
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

describe('gradientBoostingToOnnx', () => {
  it("scores the validation set, NaN and split boundaries included, like the trainer's own predictions (1e-5)", async () => {
    const r = createRandom(21);
    const train = dataset(r, 6000);
    const valid = dataset(r, 2000);
    const { model } = trainGradientBoosting(train.rows, train.labels, {
      featureNames,
      trees: 80,
      subsample: 0.8,
      featureFraction: 0.8,
      validation: valid,
      seed: 3,
    });
    expect(model.trees.length).toBeGreaterThan(10);
    // Missing values are learned to go both ways somewhere in the ensemble.
    const directions = new Set(model.trees.flatMap((t) => t.missingLeft.filter((_, k) => t.feature[k]! >= 0)));
    expect(directions).toEqual(new Set([true, false]));

    const rows = [...valid.rows, ...train.rows.slice(0, 500), ...boundaryRows(model, r, valid.rows), [NaN, NaN, NaN, NaN, NaN, NaN]];
    rows.push([Infinity, -Infinity, Infinity, -Infinity, 0, -0]);
    const data = Float32Array.from(rows.flat());
    const expected = predictGradientBoostingBatch(model, data, rows.length);
    const scores = await onnxScores(gradientBoostingToOnnx(model, { name: 'gbt', version: '1' }), data, rows.length);
    expect(maxAbsDiff(scores, expected)).toBeLessThan(1e-5);
    // The comparison is not trivial: scores are spread out, and NaN rows are among them.
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(0.8);
    expect(expected.filter((p) => p > 0.2 && p < 0.8).length).toBeGreaterThan(100);
    expect(valid.rows.filter((row) => row.some(Number.isNaN)).length).toBeGreaterThan(300);
  });

  it('exports a single-leaf tree and an empty ensemble (the base score alone)', async () => {
    const rows = [[1], [1], [1], [2], [2], [2]];
    const labels = [0, 0, 1, 0, 1, 1];
    // Leaves of at least 4 rows cannot split 6 rows: each tree is one leaf.
    const { model } = trainGradientBoosting(rows, labels, { featureNames: ['x'], trees: 2, minSamplesLeaf: 4 });
    expect(model.trees.map((t) => t.feature)).toEqual([[-1], [-1]]);
    const data = Float32Array.from([1, 2, NaN]);
    const width1 = async (m: GradientBoostingModel): Promise<Float32Array> => {
      const session = await ort.InferenceSession.create(gradientBoostingToOnnx(m, { name: 'm', version: '1' }));
      const out = await session.run({ features: new ort.Tensor('float32', data, [3, 1]) });
      await session.release();
      return out.score!.data as Float32Array;
    };
    expect(maxAbsDiff(await width1(model), predictGradientBoostingBatch(model, data, 3))).toBeLessThan(1e-6);
    const empty = { ...model, trees: [] };
    expect(maxAbsDiff(await width1(empty), [0.5, 0.5, 0.5])).toBeLessThan(1e-6);
  });

  it('writes name, version, model type and feature names into the metadata', () => {
    const { model } = trainGradientBoosting([[1], [2], [3], [4]], [0, 0, 1, 1], { featureNames: ['amount'], trees: 1, minSamplesLeaf: 1 });
    const meta = readOnnxMetadata(gradientBoostingToOnnx(model, { name: 'fraud', version: '7', metadata: { trained_rows: '4' } }));
    expect(meta).toEqual({
      [MODEL_METADATA_KEYS.name]: 'fraud',
      [MODEL_METADATA_KEYS.version]: '7',
      [MODEL_METADATA_KEYS.type]: 'gradient_boosted_trees',
      [MODEL_METADATA_KEYS.featureNames]: '["amount"]',
      trained_rows: '4',
    });
  });

  it('rejects a malformed model and reserved metadata keys', () => {
    const { model } = trainGradientBoosting([[1], [2], [3], [4]], [0, 0, 1, 1], { featureNames: ['x'], trees: 1, minSamplesLeaf: 1 });
    const meta = { name: 'm', version: '1' };
    const tree = model.trees[0]!;
    const withTree = (patch: Partial<typeof tree>): GradientBoostingModel => ({ ...model, trees: [{ ...tree, ...patch }] });
    expect(() => gradientBoostingToOnnx(withTree({ threshold: [0.1, 0, 0] }), meta)).toThrow(/threshold 0.1 is not a finite float32/);
    expect(() => gradientBoostingToOnnx(withTree({ left: [0, -1, -1] }), meta)).toThrow(/child 0 must come after its parent/);
    expect(() => gradientBoostingToOnnx(withTree({ feature: [3, -1, -1] }), meta)).toThrow(/feature 3 is not in \[0, 1\)/);
    expect(() => gradientBoostingToOnnx(withTree({ value: [0, NaN, 0] }), meta)).toThrow(/leaf value NaN/);
    expect(() => gradientBoostingToOnnx(withTree({ missingLeft: [true] }), meta)).toThrow(/missingLeft has 1 entries/);
    expect(() => gradientBoostingToOnnx({ ...model, baseScore: 0.1 }, meta)).toThrow(/baseScore 0.1/);
    expect(() => gradientBoostingToOnnx(model, { ...meta, metadata: { [MODEL_METADATA_KEYS.type]: 'x' } })).toThrow(/is reserved/);
  });
});
