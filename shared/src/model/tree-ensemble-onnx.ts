/**
 * Exports a `GradientBoostingModel` as an ONNX graph:
 * features [N, F] -> ai.onnx.ml TreeEnsembleRegressor (opset 3, SUM of the trees' leaf
 * values plus the base score) -> logit [N, 1] -> Sigmoid -> score [N, 1].
 *
 * Each split node is `BRANCH_LEQ` (the true branch, x <= threshold, is the left child), with
 * `nodes_missing_value_tracks_true` set where NaN goes left; thresholds, leaf values and the
 * base score are the model's float32 values, written unchanged.
 */
import { BATCH_DIM, ML_DOMAIN, OnnxGraphBuilder, attr } from './onnx-graph.js';
import { assertGradientBoostingModel, type GradientBoostingModel } from './gradient-boosting.js';
import { MODEL_METADATA_KEYS, type OnnxModelMeta } from './logistic-regression-onnx.js';

export const TREE_ENSEMBLE_INPUT = 'features';
export const TREE_ENSEMBLE_OUTPUT = 'score';
export const GRADIENT_BOOSTING_MODEL_TYPE = 'gradient_boosted_trees';

export function gradientBoostingToOnnx(model: GradientBoostingModel, meta: OnnxModelMeta): Uint8Array {
  assertGradientBoostingModel(model);
  if (meta.name.length === 0) throw new Error('gradientBoostingToOnnx: meta.name must not be empty');
  if (meta.version.length === 0) throw new Error('gradientBoostingToOnnx: meta.version must not be empty');
  const f = model.featureNames.length;

  const nodes = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    modes: [] as string[],
    values: [] as number[],
    trueIds: [] as number[],
    falseIds: [] as number[],
    missingTrue: [] as number[],
  };
  const targets = { treeIds: [] as number[], nodeIds: [] as number[], ids: [] as number[], weights: [] as number[] };
  // A model without trees still needs one (a single leaf worth 0) for the operator to be valid.
  const trees =
    model.trees.length > 0 ? model.trees : [{ feature: [-1], threshold: [0], left: [-1], right: [-1], missingLeft: [false], value: [0] }];
  trees.forEach((tree, t) => {
    for (let k = 0; k < tree.feature.length; k++) {
      const j = tree.feature[k] as number;
      const leaf = j < 0;
      nodes.treeIds.push(t);
      nodes.nodeIds.push(k);
      nodes.featureIds.push(leaf ? 0 : j);
      nodes.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      nodes.values.push(leaf ? 0 : (tree.threshold[k] as number));
      nodes.trueIds.push(leaf ? 0 : (tree.left[k] as number));
      nodes.falseIds.push(leaf ? 0 : (tree.right[k] as number));
      nodes.missingTrue.push(!leaf && tree.missingLeft[k] === true ? 1 : 0);
      if (leaf) {
        targets.treeIds.push(t);
        targets.nodeIds.push(k);
        targets.ids.push(0);
        targets.weights.push(tree.value[k] as number);
      }
    }
  });

  const graph = new OnnxGraphBuilder({ name: meta.name, ml: true, docString: 'gradient-boosted trees, log loss' })
    .addInput(TREE_ENSEMBLE_INPUT, 'float', [BATCH_DIM, f])
    .addOutput(TREE_ENSEMBLE_OUTPUT, 'float', [BATCH_DIM, 1])
    .addNode({
      opType: 'TreeEnsembleRegressor',
      domain: ML_DOMAIN,
      inputs: [TREE_ENSEMBLE_INPUT],
      outputs: ['logit'],
      attributes: {
        n_targets: attr.int(1),
        aggregate_function: attr.string('SUM'),
        post_transform: attr.string('NONE'),
        base_values: attr.floats([model.baseScore]),
        nodes_treeids: attr.ints(nodes.treeIds),
        nodes_nodeids: attr.ints(nodes.nodeIds),
        nodes_featureids: attr.ints(nodes.featureIds),
        nodes_modes: attr.strings(nodes.modes),
        nodes_values: attr.floats(nodes.values),
        nodes_truenodeids: attr.ints(nodes.trueIds),
        nodes_falsenodeids: attr.ints(nodes.falseIds),
        nodes_missing_value_tracks_true: attr.ints(nodes.missingTrue),
        target_treeids: attr.ints(targets.treeIds),
        target_nodeids: attr.ints(targets.nodeIds),
        target_ids: attr.ints(targets.ids),
        target_weights: attr.floats(targets.weights),
      },
    })
    .addNode({ opType: 'Sigmoid', inputs: ['logit'], outputs: [TREE_ENSEMBLE_OUTPUT] });

  const reserved = new Set<string>(Object.values(MODEL_METADATA_KEYS));
  for (const [key, value] of Object.entries(meta.metadata ?? {})) {
    if (reserved.has(key)) throw new Error(`gradientBoostingToOnnx: metadata key "${key}" is reserved`);
    graph.setMetadata(key, value);
  }
  graph
    .setMetadata(MODEL_METADATA_KEYS.name, meta.name)
    .setMetadata(MODEL_METADATA_KEYS.version, meta.version)
    .setMetadata(MODEL_METADATA_KEYS.type, GRADIENT_BOOSTING_MODEL_TYPE)
    .setMetadata(MODEL_METADATA_KEYS.featureNames, JSON.stringify(model.featureNames));
  return graph.toBytes();
}
