import { describe, it, expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import pkg from 'onnx-proto';
import { BATCH_DIM, OnnxGraphBuilder, attr, readOnnxMetadata } from './onnx-graph.js';

const { onnx } = pkg;
const text = new TextDecoder();

async function run(bytes: Uint8Array, input: string, data: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const results = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
    const output = session.outputNames[0] as string;
    return results[output] as ort.Tensor;
  } finally {
    await session.release();
  }
}

describe('OnnxGraphBuilder', () => {
  it('writes IR 8, producer, opsets, metadata and a symbolic batch dimension', () => {
    const bytes = new OnnxGraphBuilder({ name: 'g', ml: true })
      .addInput('x', 'float', [BATCH_DIM, 3])
      .addOutput('y', 'float', [BATCH_DIM, 3])
      .addNode({ opType: 'Identity', inputs: ['x'], outputs: ['y'] })
      .setMetadata('k', 'v')
      .setMetadata('json', '["a","b"]')
      .toBytes();
    const model = onnx.ModelProto.decode(bytes);
    expect(Number(model.irVersion)).toBe(8);
    expect(model.producerName).toBe('tributary');
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 13],
      ['ai.onnx.ml', 3],
    ]);
    const dims = model.graph?.input?.[0]?.type?.tensorType?.shape?.dim ?? [];
    expect(dims[0]?.dimParam).toBe('N');
    expect(Number(dims[1]?.dimValue)).toBe(3);
    expect(readOnnxMetadata(bytes)).toEqual({ k: 'v', json: '["a","b"]' });
  });

  it('imports only the default opset unless asked', () => {
    const bytes = new OnnxGraphBuilder({ name: 'g' })
      .addInput('x', 'float', [BATCH_DIM, 1])
      .addOutput('y', 'float', [BATCH_DIM, 1])
      .addNode({ opType: 'Identity', inputs: ['x'], outputs: ['y'] })
      .toBytes();
    expect(onnx.ModelProto.decode(bytes).opsetImport.map((o) => o.domain)).toEqual(['']);
  });

  it('encodes typed attributes', () => {
    const model = new OnnxGraphBuilder({ name: 'g' })
      .addInput('x', 'float', [BATCH_DIM, 1])
      .addOutput('y', 'float', [BATCH_DIM, 1])
      .addNode({
        opType: 'Identity',
        inputs: ['x'],
        outputs: ['y'],
        attributes: {
          i: attr.int(3),
          f: attr.float(0.25),
          s: attr.string('héllo'),
          is: attr.ints([1, -2, 3]),
          fs: attr.floats([0.5, 1.5]),
          ss: attr.strings(['a', 'bc']),
        },
      })
      .toModelProto();
    const a = Object.fromEntries((model.graph?.node?.[0]?.attribute ?? []).map((x) => [x.name, x]));
    const T = onnx.AttributeProto.AttributeType;
    expect(a.i?.type).toBe(T.INT);
    expect(Number(a.i?.i)).toBe(3);
    expect(a.f?.type).toBe(T.FLOAT);
    expect(a.f?.f).toBe(0.25);
    expect(a.s?.type).toBe(T.STRING);
    expect(text.decode(a.s?.s ?? new Uint8Array())).toBe('héllo');
    expect(a.is?.type).toBe(T.INTS);
    expect(a.is?.ints?.map(Number)).toEqual([1, -2, 3]);
    expect(a.fs?.type).toBe(T.FLOATS);
    expect(a.fs?.floats).toEqual([0.5, 1.5]);
    expect(a.ss?.type).toBe(T.STRINGS);
    expect(a.ss?.strings?.map((s: Uint8Array) => text.decode(s))).toEqual(['a', 'bc']);
  });

  it('runs in onnxruntime: initializers and a float attribute', async () => {
    // y = LeakyRelu(x * w, alpha = 0.1), w broadcast over the batch.
    const bytes = new OnnxGraphBuilder({ name: 'g' })
      .addInput('x', 'float', [BATCH_DIM, 2])
      .addOutput('y', 'float', [BATCH_DIM, 2])
      .addFloatInitializer('w', [2], [2, -3])
      .addNode({ opType: 'Mul', inputs: ['x', 'w'], outputs: ['xw'] })
      .addNode({ opType: 'LeakyRelu', inputs: ['xw'], outputs: ['y'], attributes: { alpha: attr.float(0.1) } })
      .toBytes();
    const y = await run(bytes, 'x', Float32Array.from([1, 1, -1, -2]), [2, 2]);
    expect(y.dims).toEqual([2, 2]);
    expect([...(y.data as Float32Array)].map((v) => Math.round(v * 1e6) / 1e6)).toEqual([2, -0.3, -0.2, 6]);
  });

  it('runs an ai.onnx.ml TreeEnsembleRegressor (ints, floats and strings attributes)', async () => {
    // One stump: x[1] <= 0.5 ? 10 : 20, plus base value 1.
    const bytes = new OnnxGraphBuilder({ name: 'stump', ml: true })
      .addInput('x', 'float', [BATCH_DIM, 2])
      .addOutput('y', 'float', [BATCH_DIM, 1])
      .addNode({
        opType: 'TreeEnsembleRegressor',
        domain: 'ai.onnx.ml',
        inputs: ['x'],
        outputs: ['y'],
        attributes: {
          n_targets: attr.int(1),
          nodes_treeids: attr.ints([0, 0, 0]),
          nodes_nodeids: attr.ints([0, 1, 2]),
          nodes_featureids: attr.ints([1, 0, 0]),
          nodes_modes: attr.strings(['BRANCH_LEQ', 'LEAF', 'LEAF']),
          nodes_values: attr.floats([0.5, 0, 0]),
          nodes_truenodeids: attr.ints([1, 0, 0]),
          nodes_falsenodeids: attr.ints([2, 0, 0]),
          target_treeids: attr.ints([0, 0]),
          target_nodeids: attr.ints([1, 2]),
          target_ids: attr.ints([0, 0]),
          target_weights: attr.floats([10, 20]),
          base_values: attr.floats([1]),
          aggregate_function: attr.string('SUM'),
          post_transform: attr.string('NONE'),
        },
      })
      .toBytes();
    const y = await run(bytes, 'x', Float32Array.from([9, 0.2, -9, 0.5, 0, 0.7]), [3, 2]);
    expect(y.dims).toEqual([3, 1]);
    expect([...(y.data as Float32Array)]).toEqual([11, 11, 21]);
  });

  it('rejects inconsistent graphs with clear messages', () => {
    const base = () => new OnnxGraphBuilder({ name: 'g' }).addInput('x', 'float', [BATCH_DIM, 2]);
    expect(() => base().addNode({ opType: 'Relu', inputs: ['nope'], outputs: ['y'] })).toThrow(/input "nope" is not defined yet/);
    expect(() => base().addInput('x', 'float', [1])).toThrow(/"x" is already defined/);
    expect(() => base().addFloatInitializer('w', [2, 2], [1, 2, 3])).toThrow(/needs 4 values, got 3/);
    expect(() => base().addFloatInitializer('w', [1], [NaN])).toThrow(/value 0 is NaN/);
    expect(() => base().addNode({ opType: 'TreeEnsembleRegressor', domain: 'ai.onnx.ml', inputs: ['x'], outputs: ['y'] })).toThrow(
      /no opset import.*ml: true/,
    );
    expect(() => base().addOutput('y', 'float', [BATCH_DIM, 2]).toBytes()).toThrow(/"y" is not produced/);
    expect(() =>
      base()
        .addNode({ opType: 'Relu', name: 'n', inputs: ['x'], outputs: ['a'] })
        .addNode({ opType: 'Relu', name: 'n', inputs: ['a'], outputs: ['b'] }),
    ).toThrow(/node name "n" is used twice/);
    expect(() => base().addNode({ opType: 'Relu', inputs: ['x'], outputs: ['y'], attributes: { k: attr.int(1.5) } })).toThrow(
      /1.5 is not an integer/,
    );
  });
});
