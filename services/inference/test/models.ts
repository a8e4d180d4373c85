/** Model versions for the registry tests: a copy of the bundled registry, new versions, and a model built without the project's builder. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pkg from 'onnx-proto';
import { attr, fraud, logisticRegressionToOnnx, OnnxGraphBuilder, planModelFeatures } from '@tributary/shared';
import type { ModelManifest } from '../src/model.js';
import type { ServedModel } from '../src/registry/serving.js';

const { onnx } = pkg;
export const BUNDLED_REGISTRY = new URL('../../../models', import.meta.url).pathname;

/** A writable copy of the bundled registry (fraud_detector version 1). */
export function tempRegistry(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-registry-'));
  // Without the routing a run recorded in the bundled registry (see ModelRegistry.record).
  cpSync(BUNDLED_REGISTRY, dir, { recursive: true, filter: (source) => basename(source) !== 'routing.json' });
  return dir;
}

export interface BuiltVersion {
  manifest: ModelManifest;
  bytes: Buffer;
  /** The score the model must give a vector, computed here without onnxruntime. */
  expected(vector: ArrayLike<number>): number;
}

function manifestFor(name: string, version: string, bytes: Buffer, extra: Partial<ModelManifest>): ModelManifest {
  return {
    name,
    version,
    format: 'onnx',
    file: 'model.onnx',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    input: 'features',
    output: 'score',
    features: fraud.FRAUD_MODEL_FEATURES,
    threshold: 0.5,
    created_at: new Date().toISOString(),
    training: { algorithm: 'test' },
    ...extra,
  };
}

/** A logistic regression over the fraud features: score = sigmoid(weight * sum(x) + bias). */
export function logisticVersion(version: string, weight: number, bias: number, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const bytes = Buffer.from(
    logisticRegressionToOnnx(
      {
        featureNames: fraud.FRAUD_MODEL_FEATURES,
        mean: new Array<number>(width).fill(0),
        scale: new Array<number>(width).fill(1),
        weights: new Array<number>(width).fill(weight),
        bias,
      },
      { name, version },
    ),
  );
  return {
    manifest: manifestFor(name, version, bytes, {}),
    bytes,
    expected: (x) => 1 / (1 + Math.exp(-(weight * Array.from(x).reduce((a, b) => a + b, 0) + bias))),
  };
}

/** A logistic regression over any features (score = sigmoid(0.001 * sum(x) - 2)), with manifest fields such as feature_types. */
export function typedVersion(
  version: string,
  features: string[],
  extra: Partial<ModelManifest> = {},
  name = 'fraud_detector',
): BuiltVersion {
  const width = features.length;
  const bytes = Buffer.from(
    logisticRegressionToOnnx(
      {
        featureNames: features,
        mean: new Array<number>(width).fill(0),
        scale: new Array<number>(width).fill(1),
        weights: new Array<number>(width).fill(0.001),
        bias: -2,
      },
      { name, version },
    ),
  );
  return {
    manifest: manifestFor(name, version, bytes, { features, ...extra }),
    bytes,
    expected: (x) => 1 / (1 + Math.exp(-(0.001 * Array.from(x).reduce((a, b) => a + b, 0) - 2))),
  };
}

/** The features of the foreign model, in its own order (a subset of the catalog's). */
export const FOREIGN_FEATURES = ['request:amount', 'user_transactions:count_24h', 'on_demand:log_amount'];
const FOREIGN_W = [
  [0.01, -0.01],
  [0.2, -0.3],
  [-0.5, 0.7],
];
const FOREIGN_B = [0.3, -0.2];

/** A tensor's name, element type and shape, as a graph's input or output declares it. */
function valueInfo(name: string, dims: (number | string)[], elemType: number = onnx.TensorProto.DataType.FLOAT) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        }),
      }),
    }),
  });
}

/** An ONNX model written with onnx-proto directly (opset 12), as other tools export them. */
function handWrittenModel(graph: Parameters<typeof onnx.GraphProto.create>[0]): Buffer {
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'hand-written',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 12 })],
    graph: onnx.GraphProto.create(graph),
  });
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}

/**
 * A two-class classifier written with onnx-proto directly, as other tools export them:
 * input "input" [N, 3], Gemm then Softmax, output "probabilities" [N, 2]; the served score
 * is column 1 (the positive class).
 */
export function foreignVersion(version: string, name = 'fraud_detector'): BuiltVersion {
  const tensor = (tensorName: string, dims: number[], values: number[]) =>
    onnx.TensorProto.create({ name: tensorName, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: values });
  const bytes = handWrittenModel({
    name: 'foreign',
    input: [valueInfo('input', ['batch', 3])],
    output: [valueInfo('probabilities', ['batch', 2])],
    initializer: [tensor('W', [3, 2], FOREIGN_W.flat()), tensor('B', [2], FOREIGN_B)],
    node: [
      onnx.NodeProto.create({ opType: 'Gemm', input: ['input', 'W', 'B'], output: ['logits'], name: 'gemm' }),
      onnx.NodeProto.create({
        opType: 'Softmax',
        input: ['logits'],
        output: ['probabilities'],
        name: 'softmax',
        attribute: [onnx.AttributeProto.create({ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 })],
      }),
    ],
  });
  return {
    manifest: manifestFor(name, version, bytes, { input: 'input', output: 'probabilities', output_column: 1, features: FOREIGN_FEATURES }),
    bytes,
    expected: (x) => {
      const logits = [0, 1].map((c) => FOREIGN_B[c]! + [0, 1, 2].reduce((s, i) => s + x[i]! * FOREIGN_W[i]![c]!, 0));
      const exp = logits.map((l) => Math.exp(l));
      return exp[1]! / (exp[0]! + exp[1]!);
    },
  };
}

/** A model whose output holds integers (the input cast to int64), not scores: the registry must refuse it. */
export function integerOutputVersion(version: string, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const INT64 = onnx.TensorProto.DataType.INT64;
  const bytes = handWrittenModel({
    name: 'integers',
    input: [valueInfo('features', ['batch', width])],
    output: [valueInfo('score', ['batch', width], INT64)],
    node: [
      onnx.NodeProto.create({
        opType: 'Cast',
        input: ['features'],
        output: ['score'],
        name: 'cast',
        attribute: [onnx.AttributeProto.create({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: INT64 })],
      }),
    ],
  });
  return { manifest: manifestFor(name, version, bytes, {}), bytes, expected: (x) => Math.trunc(x[0]!) };
}

/**
 * A linear model over the fraud features (score = 0.001 * sum(x)) that scores exactly two rows at a
 * time: with `fixedBatch`, its input declares the shape [2, features]; without, it declares [N,
 * features] but reshapes its input to [2, features], so a one-row batch fails.
 */
export function twoRowVersion(version: string, fixedBatch: boolean, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const graph = new OnnxGraphBuilder({ name: 'two-rows' })
    .addInput('features', 'float', [fixedBatch ? 2 : 'N', width])
    .addFloatInitializer('W', [width, 1], new Array<number>(width).fill(0.001))
    .addNode({ opType: 'Constant', inputs: [], outputs: ['shape'], attributes: { value_ints: attr.ints([2, width]) } })
    .addNode({ opType: 'Reshape', inputs: ['features', 'shape'], outputs: ['rows'] })
    .addNode({ opType: 'Gemm', inputs: ['rows', 'W'], outputs: ['score'] })
    .addOutput('score', 'float', [fixedBatch ? 2 : 'N', 1]);
  const bytes = Buffer.from(graph.toBytes());
  return { manifest: manifestFor(name, version, bytes, {}), bytes, expected: (x) => 0.001 * Array.from(x).reduce((a, b) => a + b, 0) };
}

/**
 * A model whose output does not follow its rows: two values whatever the batch, as a model that
 * averages over the batch gives (each row's score would depend on the other rows of its batch).
 */
export function batchWideVersion(version: string, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const graph = new OnnxGraphBuilder({ name: 'batch-wide' })
    .addInput('features', 'float', ['N', width])
    .addNode({ opType: 'Constant', inputs: [], outputs: ['score'], attributes: { value_floats: attr.floats([0.25, 0.75]) } })
    .addOutput('score', 'float', [2]);
  const bytes = Buffer.from(graph.toBytes());
  return { manifest: manifestFor(name, version, bytes, {}), bytes, expected: () => 0.25 };
}

/**
 * A model over the fraud features whose score is `op(weight * sum(x))`: finite for the all-zero
 * rows of the registry's test run, NaN (Sqrt, weight < 0) or infinite (Exp, large weight) for a
 * request with a positive amount.
 */
export function unboundedVersion(version: string, op: 'Exp' | 'Sqrt', weight: number, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const graph = new OnnxGraphBuilder({ name: 'unbounded' })
    .addInput('features', 'float', ['N', width])
    .addFloatInitializer('W', [width, 1], new Array<number>(width).fill(weight))
    .addNode({ opType: 'Gemm', inputs: ['features', 'W'], outputs: ['sum'] })
    .addNode({ opType: op, inputs: ['sum'], outputs: ['score'] })
    .addOutput('score', 'float', ['N', 1]);
  const bytes = Buffer.from(graph.toBytes());
  const f = op === 'Exp' ? Math.exp : Math.sqrt;
  return { manifest: manifestFor(name, version, bytes, {}), bytes, expected: (x) => f(weight * Array.from(x).reduce((a, b) => a + b, 0)) };
}

/**
 * A linear model over the fraud features (score = weight * sum(x)) whose file holds at least
 * `megabytes` MB: its sum goes through a hidden layer of equal weights, [features, hidden] then
 * [hidden, 1], sized to make the file that large.
 */
export function largeVersion(version: string, megabytes: number, weight: number, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const hidden = Math.ceil((megabytes * 1024 * 1024) / 4 / width);
  const graph = new OnnxGraphBuilder({ name: 'large' })
    .addInput('features', 'float', ['N', width])
    .addFloatInitializer('W1', [width, hidden], new Float32Array(width * hidden).fill(weight))
    .addFloatInitializer('W2', [hidden, 1], new Float32Array(hidden).fill(1 / hidden))
    .addNode({ opType: 'MatMul', inputs: ['features', 'W1'], outputs: ['hidden'] })
    .addNode({ opType: 'MatMul', inputs: ['hidden', 'W2'], outputs: ['score'] })
    .addOutput('score', 'float', ['N', 1]);
  const bytes = Buffer.from(graph.toBytes());
  return { manifest: manifestFor(name, version, bytes, {}), bytes, expected: (x) => weight * Array.from(x).reduce((a, b) => a + b, 0) };
}

/**
 * Runs the registry CLI (`npm run models`) with the given environment, without the caller's
 * REDIS_URL and KAFKA_BROKERS; `onStderr` sees its error output as it comes.
 */
const CLI = fileURLToPath(new URL('../src/registry-cli.ts', import.meta.url));

export async function models(
  args: string[],
  env: Record<string, string>,
  onStderr?: (text: string) => void,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['REDIS_URL', 'KAFKA_BROKERS'].includes(k)));
  try {
    const running = promisify(execFile)(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...clean, ...env } });
    if (onStderr) running.child.stderr?.on('data', (chunk: Buffer | string) => onStderr(String(chunk)));
    const { stdout, stderr } = await running;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** A version folder as a user hands it to `register`: manifest.json and the ONNX file. */
export function versionFolder(built: BuiltVersion): string {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-version-'));
  writeFileSync(join(dir, built.manifest.file), built.bytes);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(built.manifest));
  return dir;
}

/** A version served without onnxruntime: `score` answers for it (a fixed score, a failure). */
export function fakeServed(manifest: ModelManifest, score: (rows: number) => Promise<Float32Array>): ServedModel {
  return {
    model: {
      manifest,
      score: (_: Float32Array, rows: number) => score(rows),
      queued: 0,
      inlineMaxRows: 0,
      workerThreads: 1,
      close: async () => {},
    } as unknown as ServedModel['model'],
    plan: planModelFeatures(manifest, fraud.fraudExample().catalog),
    users: 0,
    retired: false,
  };
}

/**
 * A slow model over the fraud features: score = sigmoid(0.1 * sum(x)), reached through `layers`
 * MatMuls of a [512, 512] matrix of equal weights (each keeps a row of equal values as it is).
 * A row costs about `layers` x 262,144 multiply-adds, so a large batch runs for a long while
 * inside onnxruntime.
 */
export function slowVersion(version: string, layers: number, name = 'fraud_detector'): BuiltVersion {
  const width = fraud.FRAUD_MODEL_FEATURES.length;
  const hidden = 512;
  const graph = new OnnxGraphBuilder({ name: 'slow' })
    .addInput('features', 'float', ['N', width])
    .addFloatInitializer('W_in', [width, hidden], new Float32Array(width * hidden).fill(0.1))
    .addFloatInitializer('W', [hidden, hidden], new Float32Array(hidden * hidden).fill(1 / hidden))
    .addFloatInitializer('W_out', [hidden, 1], new Float32Array(hidden).fill(1 / hidden))
    .addNode({ opType: 'MatMul', inputs: ['features', 'W_in'], outputs: ['h0'] });
  for (let layer = 1; layer <= layers; layer++) {
    graph.addNode({ opType: 'MatMul', inputs: [`h${layer - 1}`, 'W'], outputs: [`h${layer}`] });
  }
  graph
    .addNode({ opType: 'MatMul', inputs: [`h${layers}`, 'W_out'], outputs: ['logit'] })
    .addNode({ opType: 'Sigmoid', inputs: ['logit'], outputs: ['score'] })
    .addOutput('score', 'float', ['N', 1]);
  const bytes = Buffer.from(graph.toBytes());
  return {
    manifest: manifestFor(name, version, bytes, {}),
    bytes,
    expected: (x) => 1 / (1 + Math.exp(-0.1 * Array.from(x).reduce((a, b) => a + b, 0))),
  };
}
