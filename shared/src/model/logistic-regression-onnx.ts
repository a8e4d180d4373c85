/**
 * Exports a `LogisticRegressionModel` as an ONNX graph:
 * features [N, F] -> Sub(mean) -> Div(scale) -> MatMul(weights [F, 1]) -> Add(bias) -> Sigmoid -> score [N, 1].
 */
import { BATCH_DIM, OnnxGraphBuilder } from './onnx-graph.js';
import { assertLogisticRegressionModel } from './logistic-regression.js';
import type { LogisticRegressionModel } from './logistic-regression.js';

export const LOGISTIC_REGRESSION_INPUT = 'features';
export const LOGISTIC_REGRESSION_OUTPUT = 'score';

/** metadata_props keys written by the exporter. */
export const MODEL_METADATA_KEYS = {
  name: 'tributary.model.name',
  version: 'tributary.model.version',
  type: 'tributary.model.type',
  featureNames: 'tributary.model.feature_names',
} as const;

export interface OnnxModelMeta {
  name: string;
  version: string;
  /** Extra metadata_props; must not reuse the keys in MODEL_METADATA_KEYS. */
  metadata?: Record<string, string>;
}

export function logisticRegressionToOnnx(model: LogisticRegressionModel, meta: OnnxModelMeta): Uint8Array {
  assertLogisticRegressionModel(model);
  if (meta.name.length === 0) throw new Error('logisticRegressionToOnnx: meta.name must not be empty');
  if (meta.version.length === 0) throw new Error('logisticRegressionToOnnx: meta.version must not be empty');
  const f = model.featureNames.length;

  const graph = new OnnxGraphBuilder({ name: meta.name, docString: 'logistic regression on standardized features' })
    .addInput(LOGISTIC_REGRESSION_INPUT, 'float', [BATCH_DIM, f])
    .addOutput(LOGISTIC_REGRESSION_OUTPUT, 'float', [BATCH_DIM, 1])
    .addFloatInitializer('mean', [f], model.mean)
    .addFloatInitializer('scale', [f], model.scale)
    .addFloatInitializer('weights', [f, 1], model.weights)
    .addFloatInitializer('bias', [1], [model.bias])
    .addNode({ opType: 'Sub', inputs: [LOGISTIC_REGRESSION_INPUT, 'mean'], outputs: ['centered'] })
    .addNode({ opType: 'Div', inputs: ['centered', 'scale'], outputs: ['standardized'] })
    .addNode({ opType: 'MatMul', inputs: ['standardized', 'weights'], outputs: ['dot'] })
    .addNode({ opType: 'Add', inputs: ['dot', 'bias'], outputs: ['logit'] })
    .addNode({ opType: 'Sigmoid', inputs: ['logit'], outputs: [LOGISTIC_REGRESSION_OUTPUT] });

  const reserved = new Set<string>(Object.values(MODEL_METADATA_KEYS));
  for (const [key, value] of Object.entries(meta.metadata ?? {})) {
    if (reserved.has(key)) throw new Error(`logisticRegressionToOnnx: metadata key "${key}" is reserved`);
    graph.setMetadata(key, value);
  }
  graph
    .setMetadata(MODEL_METADATA_KEYS.name, meta.name)
    .setMetadata(MODEL_METADATA_KEYS.version, meta.version)
    .setMetadata(MODEL_METADATA_KEYS.type, 'logistic_regression')
    .setMetadata(MODEL_METADATA_KEYS.featureNames, JSON.stringify(model.featureNames));
  return graph.toBytes();
}
