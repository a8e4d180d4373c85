/**
 * A small, typed builder for ONNX models over the `onnx-proto` schema (ONNX 1.10,
 * IR version 8). It knows nothing about any particular model: exporters add
 * initializers, nodes, inputs and outputs, then call `toBytes()`.
 */
import pkg from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = pkg;

export const ONNX_IR_VERSION = 8;
export const DEFAULT_OPSET = 13;
export const ML_DOMAIN = 'ai.onnx.ml';
export const ML_OPSET = 3;
export const PRODUCER_NAME = 'tributary';
/** The symbolic batch dimension used by Tributary models. */
export const BATCH_DIM = 'N';

/** Element types a graph input or output can have. */
export type OnnxElementType = 'float' | 'int64' | 'string';

const ELEMENT_TYPES: Record<OnnxElementType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  string: onnx.TensorProto.DataType.STRING,
};

/** A dimension: a fixed size, or a symbolic name such as `BATCH_DIM`. */
export type OnnxDim = number | string;

/** A node attribute, tagged with its ONNX type (a bare number would be ambiguous). */
export type OnnxAttribute =
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'strings'; readonly value: readonly string[] };

/** Constructors for `OnnxAttribute`, e.g. `attr.floats([0.5, 1])`. */
export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value }),
  strings: (value: readonly string[]): OnnxAttribute => ({ type: 'strings', value }),
} as const;

export interface OnnxNodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Unique node name; generated from the op type when omitted. */
  name?: string;
  /** Operator domain: '' (default ONNX) or 'ai.onnx.ml'. */
  domain?: string;
  attributes?: Readonly<Record<string, OnnxAttribute>>;
}

export interface OnnxGraphOptions {
  /** Graph name. */
  name: string;
  /** Also import the 'ai.onnx.ml' opset 3 (tree ensembles, linear classifiers, ...). */
  ml?: boolean;
  docString?: string;
}

const encoder = new TextEncoder();

export class OnnxGraphBuilder {
  readonly #name: string;
  readonly #docString: string | undefined;
  readonly #opsets = new Map<string, number>();
  readonly #initializers: OnnxTypes.ITensorProto[] = [];
  readonly #nodes: OnnxTypes.INodeProto[] = [];
  readonly #inputs: OnnxTypes.IValueInfoProto[] = [];
  readonly #outputs: OnnxTypes.IValueInfoProto[] = [];
  readonly #metadata = new Map<string, string>();
  /** Every value name defined so far (inputs, initializers, node outputs). */
  readonly #defined = new Set<string>();
  readonly #nodeNames = new Set<string>();

  constructor(options: OnnxGraphOptions) {
    if (options.name.length === 0) throw new Error('OnnxGraphBuilder: graph name must not be empty');
    this.#name = options.name;
    this.#docString = options.docString;
    this.#opsets.set('', DEFAULT_OPSET);
    if (options.ml === true) this.#opsets.set(ML_DOMAIN, ML_OPSET);
  }

  /** Adds a float32 constant tensor of shape `dims` (values in row-major order). */
  addFloatInitializer(name: string, dims: readonly number[], values: ArrayLike<number>): this {
    this.#define(name, 'initializer');
    for (const d of dims) {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw new Error(`initializer "${name}": dimension ${String(d)} is not a non-negative integer`);
      }
    }
    const size = dims.reduce((a, b) => a * b, 1);
    if (values.length !== size) {
      throw new Error(`initializer "${name}": shape [${dims.join(', ')}] needs ${size} values, got ${values.length}`);
    }
    const floatData = Array.from(values, (v, i) => {
      if (!Number.isFinite(v)) throw new Error(`initializer "${name}": value ${i} is ${String(v)}`);
      return v;
    });
    this.#initializers.push({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, floatData });
    return this;
  }

  addInput(name: string, elementType: OnnxElementType, shape: readonly OnnxDim[]): this {
    this.#define(name, 'input');
    this.#inputs.push(valueInfo(name, elementType, shape));
    return this;
  }

  /** Declares a graph output; it must be produced by a node added before `toBytes()`. */
  addOutput(name: string, elementType: OnnxElementType, shape: readonly OnnxDim[]): this {
    if (this.#outputs.some((o) => o.name === name)) throw new Error(`output "${name}" is declared twice`);
    this.#outputs.push(valueInfo(name, elementType, shape));
    return this;
  }

  /** Adds a node. Nodes must be added in topological order: every input already defined. */
  addNode(spec: OnnxNodeSpec): this {
    const domain = spec.domain ?? '';
    if (!this.#opsets.has(domain)) {
      throw new Error(
        `node ${spec.opType}: domain "${domain}" has no opset import` +
          (domain === ML_DOMAIN ? ' (create the builder with { ml: true })' : ''),
      );
    }
    const name = spec.name ?? `${spec.opType}_${this.#nodes.length}`;
    if (this.#nodeNames.has(name)) throw new Error(`node name "${name}" is used twice`);
    for (const input of spec.inputs) {
      // '' marks an omitted optional input in ONNX.
      if (input !== '' && !this.#defined.has(input)) {
        throw new Error(`node "${name}" (${spec.opType}): input "${input}" is not defined yet`);
      }
    }
    if (spec.outputs.length === 0) throw new Error(`node "${name}" (${spec.opType}) has no outputs`);
    for (const output of spec.outputs) this.#define(output, `output of node "${name}"`);
    this.#nodeNames.add(name);
    this.#nodes.push({
      name,
      opType: spec.opType,
      domain,
      input: [...spec.inputs],
      output: [...spec.outputs],
      attribute: Object.entries(spec.attributes ?? {}).map(([key, a]) => attributeProto(key, a)),
    });
    return this;
  }

  /** Sets a model-level metadata_props entry (string key and value). */
  setMetadata(key: string, value: string): this {
    if (key.length === 0) throw new Error('metadata key must not be empty');
    this.#metadata.set(key, value);
    return this;
  }

  toModelProto(): OnnxTypes.ModelProto {
    if (this.#outputs.length === 0) throw new Error(`graph "${this.#name}" has no outputs`);
    for (const o of this.#outputs) {
      if (!this.#defined.has(o.name ?? '')) {
        throw new Error(`graph output "${o.name ?? ''}" is not produced by any node, input or initializer`);
      }
    }
    const graph: OnnxTypes.IGraphProto = {
      name: this.#name,
      node: this.#nodes,
      initializer: this.#initializers,
      input: this.#inputs,
      output: this.#outputs,
    };
    if (this.#docString !== undefined) graph.docString = this.#docString;
    return onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: PRODUCER_NAME,
      opsetImport: [...this.#opsets].map(([domain, version]) => ({ domain, version })),
      metadataProps: [...this.#metadata].map(([key, value]) => ({ key, value })),
      graph,
    });
  }

  toBytes(): Uint8Array {
    return onnx.ModelProto.encode(this.toModelProto()).finish();
  }

  #define(name: string, what: string): void {
    if (name.length === 0) throw new Error(`${what}: value name must not be empty`);
    if (this.#defined.has(name)) throw new Error(`${what}: value name "${name}" is already defined`);
    this.#defined.add(name);
  }
}

/** Reads the metadata_props of a serialized model (onnxruntime-node does not expose them). */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const model = onnx.ModelProto.decode(bytes);
  const out: Record<string, string> = {};
  for (const entry of model.metadataProps) out[entry.key ?? ''] = entry.value ?? '';
  return out;
}

function valueInfo(name: string, elementType: OnnxElementType, shape: readonly OnnxDim[]): OnnxTypes.IValueInfoProto {
  const dim = shape.map((d): OnnxTypes.TensorShapeProto.IDimension => {
    if (typeof d === 'string') {
      if (d.length === 0) throw new Error(`"${name}": symbolic dimension must not be empty`);
      return { dimParam: d };
    }
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`"${name}": dimension ${String(d)} is not a non-negative integer`);
    }
    return { dimValue: d };
  });
  return { name, type: { tensorType: { elemType: ELEMENT_TYPES[elementType], shape: { dim } } } };
}

function attributeProto(name: string, a: OnnxAttribute): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const integer = (v: number): number => {
    if (!Number.isSafeInteger(v)) throw new Error(`attribute "${name}": ${String(v)} is not an integer`);
    return v;
  };
  switch (a.type) {
    case 'int':
      return { name, type: T.INT, i: integer(a.value) };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: encoder.encode(a.value) };
    case 'ints':
      return { name, type: T.INTS, ints: a.value.map(integer) };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => encoder.encode(s)) };
  }
}
