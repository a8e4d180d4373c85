export { createRandom } from './random.js';
export type { Random } from './random.js';
export {
  BATCH_DIM,
  DEFAULT_OPSET,
  ML_DOMAIN,
  ML_OPSET,
  ONNX_IR_VERSION,
  OnnxGraphBuilder,
  PRODUCER_NAME,
  attr,
  readOnnxMetadata,
} from './onnx-graph.js';
export type { OnnxAttribute, OnnxDim, OnnxElementType, OnnxGraphOptions, OnnxNodeSpec } from './onnx-graph.js';
export {
  LOGISTIC_REGRESSION_DEFAULTS,
  assertLogisticRegressionModel,
  predictLogisticRegression,
  sigmoid,
  trainLogisticRegression,
} from './logistic-regression.js';
export type { LogisticRegressionModel, LogisticRegressionOptions } from './logistic-regression.js';
export {
  LOGISTIC_REGRESSION_INPUT,
  LOGISTIC_REGRESSION_OUTPUT,
  MODEL_METADATA_KEYS,
  logisticRegressionToOnnx,
} from './logistic-regression-onnx.js';
export type { OnnxModelMeta } from './logistic-regression-onnx.js';
export { LOG_LOSS_EPSILON, logLoss, rocAuc } from './metrics.js';
export {
  GRADIENT_BOOSTING_DEFAULTS,
  assertGradientBoostingModel,
  gradientBoostingParams,
  predictGradientBoosting,
  predictGradientBoostingBatch,
  predictGradientBoostingLogit,
  trainGradientBoosting,
} from './gradient-boosting.js';
export type {
  GradientBoostingModel,
  GradientBoostingOptions,
  GradientBoostingParams,
  GradientBoostingResult,
  RegressionTree,
} from './gradient-boosting.js';
export { GRADIENT_BOOSTING_MODEL_TYPE, TREE_ENSEMBLE_INPUT, TREE_ENSEMBLE_OUTPUT, gradientBoostingToOnnx } from './tree-ensemble-onnx.js';
export { compareModels, validationMetrics } from './evaluation.js';
export type { ModelComparison, ValidationMetrics } from './evaluation.js';
export { scoreOnnx } from './onnx-scoring.js';
export type { OnnxScoringTarget } from './onnx-scoring.js';
