/**
 * Trains the example's fraud model and writes a model version directory:
 *   npm run train -w services/trainer -- [--rows 60000] [--seed 1] [--out models/fraud_detector/1]
 * The model is a logistic regression exported to ONNX with the project's own builder;
 * `manifest.json` records its features, sha256, and validation metrics.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildProfile,
  logisticRegressionToOnnx,
  logLoss,
  predictLogisticRegression,
  rocAuc,
  trainLogisticRegression,
} from '@tributary/shared';
import { buildDataset } from './dataset.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '60000' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: resolve(import.meta.dirname, '../../../models/fraud_detector/1') },
    version: { type: 'string', default: '1' },
  },
});
const rows = Number(values.rows);
const seed = Number(values.seed);
if (!Number.isInteger(rows) || rows < 1000) throw new Error('--rows must be an integer >= 1000');
if (!Number.isInteger(seed) || seed < 0) throw new Error('--seed must be a non-negative integer');

const started = performance.now();
const dataset = await buildDataset({ rows, seed, users: 2000, fraudRate: 0.03, ratePerSecond: 20, start: Date.UTC(2026, 0, 1) });
// Split by time: train on the past, validate on the most recent fifth.
const cut = Math.floor(dataset.rows.length * 0.8);
const model = trainLogisticRegression(dataset.rows.slice(0, cut), dataset.labels.slice(0, cut), {
  featureNames: dataset.features,
  seed,
  epochs: 30,
  learningRate: 0.01,
});
const validation = dataset.rows.slice(cut);
const truth = dataset.labels.slice(cut);
const scores = validation.map((row) => predictLogisticRegression(model, row));
const metrics = {
  auc: rocAuc(scores, truth),
  log_loss: logLoss(scores, truth),
  rows: validation.length,
  positives: truth.filter((l) => l === 1).length,
};

// The reference the monitor compares live traffic with: the training inputs and their scores.
const trainingRows = dataset.rows.slice(0, cut).map((row) => {
  const record: Record<string, number> = { score: predictLogisticRegression(model, row) };
  dataset.features.forEach((feature, i) => (record[feature] = row[i]!));
  return record;
});
const profile = buildProfile(
  trainingRows,
  ['score', ...dataset.features].map((feature) => ({ name: feature, kind: 'numeric' as const })),
);
const name = 'fraud_detector';
const bytes = logisticRegressionToOnnx(model, { name, version: values.version! });
const manifest = {
  name,
  version: values.version!,
  format: 'onnx',
  file: 'model.onnx',
  sha256: createHash('sha256').update(bytes).digest('hex'),
  input: 'features',
  output: 'score',
  features: dataset.features,
  threshold: 0.5,
  created_at: new Date().toISOString(),
  training: {
    algorithm: 'logistic_regression',
    seed,
    rows: cut,
    // Event times of the training rows, and of the validation rows after them.
    window: { from: new Date(dataset.times[0]!).toISOString(), to: new Date(dataset.times[cut - 1]!).toISOString() },
    validation_window: { from: new Date(dataset.times[cut]!).toISOString(), to: new Date(dataset.times.at(-1)!).toISOString() },
    data: 'simulated card transactions (services/simulator), features replayed point-in-time through the feature pipeline',
    validation: metrics,
  },
  profile,
};
await mkdir(values.out!, { recursive: true });
await writeFile(join(values.out!, 'model.onnx'), bytes);
await writeFile(join(values.out!, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(
  `trained ${name} v${values.version} on ${cut} rows in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
    `validation AUC ${metrics.auc.toFixed(4)}, log loss ${metrics.log_loss.toFixed(4)} (${metrics.positives}/${metrics.rows} positives); wrote ${values.out}`,
);
