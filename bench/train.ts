/**
 * Training benchmark: gradient-boosted trees on a seeded synthetic set of 100,000 rows x 20
 * features (non-linear, with interactions and missing values), in this process:
 *   npm run bench:train [-- --rows 100000 --features 20 --trees 200 --runs 3]
 * Reports the training time of each run (wall clock and CPU; the median is the figure),
 * validation AUC, log loss and calibration, logistic regression on the same data for
 * reference, and the largest difference between the exported ONNX model's scores
 * (onnxruntime) and the trainer's on the validation rows.
 * Writes the report to bench/results/train.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import {
  createRandom,
  gradientBoostingToOnnx,
  predictGradientBoostingBatch,
  predictLogisticRegression,
  scoreOnnx,
  trainGradientBoosting,
  trainLogisticRegression,
  validationMetrics,
  type GradientBoostingResult,
  type Random,
} from '../shared/src/index.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    features: { type: 'string', default: '20' },
    trees: { type: 'string', default: '200' },
    runs: { type: 'string', default: '3' },
    'validation-rows': { type: 'string', default: '20000' },
    seed: { type: 'string', default: '1' },
  },
});
const ROWS = Number(args.rows);
const FEATURES = Number(args.features);
const TREES = Number(args.trees);
const RUNS = Number(args.runs);
const VALIDATION_ROWS = Number(args['validation-rows']);
const SEED = Number(args.seed);
if (!(FEATURES >= 6)) throw new Error('--features must be at least 6 (the target uses the first six)');
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (v: number, digits: number) => Number(v.toFixed(digits));

/**
 * The target: a threshold interaction, a non-monotone term, a product and a linear part on
 * the first six features; the rest is noise. Features have different scales, and 5% of
 * the values of features 0 and 3 are missing (missing counts as a positive signal).
 */
function synthetic(random: Random, n: number): { rows: Float32Array[]; labels: number[] } {
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = new Float32Array(FEATURES);
    for (let j = 0; j < FEATURES; j++) row[j] = random.normal() * (j % 3 === 1 ? 100 : 1);
    if (random.next() < 0.05) row[0] = NaN;
    if (random.next() < 0.05) row[3] = NaN;
    const x = (j: number) => row[j]!;
    const z =
      (x(0) > 0.5 ? 1 : -0.5) * (x(1) > 0 ? 1 : -1) +
      Math.sin(2 * x(2)) +
      (Number.isNaN(x(3)) ? 1.5 : 0.3 * x(3)) +
      0.5 * x(5) * (x(4) / 100) -
      0.5;
    rows.push(row);
    labels.push(random.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0);
  }
  return { rows, labels };
}

const random = createRandom(SEED);
const made = performance.now();
const train = synthetic(random, ROWS);
const valid = synthetic(random, VALIDATION_ROWS);
const featureNames = Array.from({ length: FEATURES }, (_, j) => `x${j}`);
console.log(`made ${ROWS} + ${VALIDATION_ROWS} rows x ${FEATURES} features in ${((performance.now() - made) / 1000).toFixed(1)} s`);

const runs: { seconds: number; cpu_seconds: number }[] = [];
let result: GradientBoostingResult | undefined;
for (let k = 0; k < RUNS; k++) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  result = trainGradientBoosting(train.rows, train.labels, { featureNames, trees: TREES, seed: SEED });
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  runs.push({ seconds: round(seconds, 2), cpu_seconds: round((used.user + used.system) / 1e6, 2) });
  console.log(`run ${k + 1}: ${seconds.toFixed(2)} s (${runs.at(-1)!.cpu_seconds} s CPU), ${result.model.trees.length} trees`);
}
const { model, params } = result!;

const validData = new Float32Array(VALIDATION_ROWS * FEATURES);
valid.rows.forEach((row, i) => validData.set(row, i * FEATURES));
const scores = predictGradientBoostingBatch(model, validData, VALIDATION_ROWS);
const metrics = validationMetrics(scores, valid.labels);
const onnx = await scoreOnnx(
  gradientBoostingToOnnx(model, { name: 'bench', version: '1' }),
  { input: 'features', output: 'score' },
  validData,
  VALIDATION_ROWS,
  FEATURES,
);
let maxAbsDiff = 0;
for (let i = 0; i < VALIDATION_ROWS; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(scores[i]! - onnx[i]!));

// Logistic regression needs complete rows: missing values imputed with 0 (the feature means).
const imputed = (rows: Float32Array[]) => rows.map((row) => row.map((v) => (Number.isNaN(v) ? 0 : v)));
const lrStart = performance.now();
const lr = trainLogisticRegression(imputed(train.rows), train.labels, { featureNames, seed: SEED });
const lrSeconds = (performance.now() - lrStart) / 1000;
const lrMetrics = validationMetrics(
  imputed(valid.rows).map((row) => predictLogisticRegression(lr, row)),
  valid.labels,
);

const report = {
  benchmark: 'train',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
  data: {
    rows: ROWS,
    features: FEATURES,
    validation_rows: VALIDATION_ROWS,
    seed: SEED,
    positive_rate: round(train.labels.reduce((a, b) => a + b, 0) / ROWS, 4),
  },
  gradient_boosting: {
    params,
    trees: model.trees.length,
    leaves: model.trees.reduce((sum, tree) => sum + tree.feature.filter((j) => j < 0).length, 0),
    runs,
    median_seconds: median(runs.map((r) => r.seconds)),
    median_cpu_seconds: median(runs.map((r) => r.cpu_seconds)),
    validation: { auc: round(metrics.auc, 4), log_loss: round(metrics.log_loss, 4), ece: round(metrics.ece, 4) },
    onnx_parity: { rows: VALIDATION_ROWS, max_abs_diff: maxAbsDiff },
  },
  logistic_regression: {
    seconds: round(lrSeconds, 2),
    validation: { auc: round(lrMetrics.auc, 4), log_loss: round(lrMetrics.log_loss, 4), ece: round(lrMetrics.ece, 4) },
  },
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/train.json', import.meta.url), JSON.stringify(report, null, 2) + '\n');
console.log(
  `gradient boosting, ${ROWS} x ${FEATURES}, ${model.trees.length} trees: median ${report.gradient_boosting.median_seconds} s ` +
    `(${report.gradient_boosting.median_cpu_seconds} s CPU) over ${RUNS} runs; validation AUC ${metrics.auc.toFixed(4)}, ` +
    `log loss ${metrics.log_loss.toFixed(4)}, ECE ${metrics.ece.toFixed(4)}; ONNX max abs diff ${maxAbsDiff.toExponential(2)}`,
);
console.log(`logistic regression on the same rows: ${lrSeconds.toFixed(2)} s, validation AUC ${lrMetrics.auc.toFixed(4)}`);
console.log('wrote bench/results/train.json');
