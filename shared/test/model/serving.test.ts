/**
 * A gradient-boosted model exported by the project loads and serves through the inference
 * service's own model code (manifest schema, sha256, input/output inspection, worker threads),
 * and the trainer's `--algorithm gbt` output is such a version.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCORING, inspectModel, readModelVersion, startModel } from '../../../services/inference/src/model.js';
import { createRandom, fraud, gradientBoostingToOnnx, predictGradientBoostingBatch, trainGradientBoosting } from '../../src/index.js';

const run = promisify(execFile);

interface Metrics {
  auc: number;
  log_loss: number;
  ece: number;
  rows: number;
  positives: number;
}
/** The part of a manifest's `training` record these tests read. */
interface TrainingRecord {
  algorithm: string;
  hyperparameters: Record<string, number>;
  fit: { trees: number };
  validation: Metrics;
  champion_comparison: {
    champion_model: Record<string, unknown>;
    champion_trained_on_validation_window: boolean | null;
    rows: number;
    challenger: Metrics;
    champion: Metrics;
    difference: Metrics;
  };
}
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('a gradient-boosted model in the inference service', () => {
  it('loads, passes inspection and scores in worker threads and on the event loop like the trainer (1e-5), missing values included', async () => {
    const features = fraud.FRAUD_MODEL_FEATURES;
    const f = features.length;
    const r = createRandom(9);
    const makeRows = (n: number): number[][] =>
      Array.from({ length: n }, () => Array.from({ length: f }, (_, j) => (r.next() < 0.05 ? NaN : j * r.normal())));
    const rows = makeRows(3000);
    // An interaction of two features (NaN compares false): something for the trees to learn.
    const labels = rows.map((row) => (r.next() < ((row[1] as number) > 0 !== (row[2] as number) > 0 ? 0.8 : 0.2) ? 1 : 0));
    const { model } = trainGradientBoosting(rows, labels, { featureNames: features, trees: 30 });
    const bytes = Buffer.from(gradientBoostingToOnnx(model, { name: 'fraud_detector', version: 'gbt-1' }));

    const dir = await mkdtemp(join(tmpdir(), 'tributary-gbt-'));
    try {
      const manifest = {
        name: 'fraud_detector',
        version: 'gbt-1',
        format: 'onnx',
        file: 'model.onnx',
        sha256: createHash('sha256').update(bytes).digest('hex'),
        input: 'features',
        output: 'score',
        features,
        threshold: 0.5,
        created_at: new Date().toISOString(),
        training: { algorithm: 'gradient_boosted_trees' },
      };
      await writeFile(join(dir, 'model.onnx'), bytes);
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
      const version = await readModelVersion(dir);
      await inspectModel(version.manifest, version.bytes);

      // Scored in a worker thread, then on the event loop (any run cheaper than 100 ms): the same scores.
      for (const inlineMaxMicros of [0, 100_000]) {
        const served = await startModel(version, { ...DEFAULT_SCORING, inlineMaxMicros });
        try {
          expect(served.inlineMaxRows).toBe(inlineMaxMicros === 0 ? 0 : DEFAULT_SCORING.maxBatchRows);
          const probe = makeRows(200);
          const data = Float32Array.from(probe.flat());
          const scores = await served.score(data, probe.length);
          const expected = predictGradientBoostingBatch(model, data, probe.length);
          let max = 0;
          for (let i = 0; i < probe.length; i++) max = Math.max(max, Math.abs(scores[i]! - expected[i]!));
          expect(max).toBeLessThan(1e-5);
          expect(probe.some((row) => row.some(Number.isNaN))).toBe(true);
        } finally {
          await served.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is what `train.ts --algorithm gbt --champion` writes: a loadable version with hyperparameters, ECE and the comparison', async () => {
    const out = await mkdtemp(join(tmpdir(), 'tributary-train-gbt-'));
    try {
      const args = ['--import', 'tsx', 'services/trainer/src/train.ts', '--algorithm', 'gbt', '--rows', '6000', '--trees', '40'];
      const { stdout } = await run(process.execPath, [...args, '--version', '2', '--out', out, '--champion', 'models/fraud_detector/1'], {
        cwd: root,
      });
      expect(stdout).toMatch(/\(gradient_boosted_trees\).*validation AUC 0\.\d+.*ECE 0\.\d+.*ONNX max abs diff/);
      expect(stdout).toMatch(/challenger\s+champion \(fraud_detector v1\)/);
      const version = await readModelVersion(out);
      await inspectModel(version.manifest, version.bytes);
      const training = version.manifest.training as unknown as TrainingRecord;
      expect(training.algorithm).toBe('gradient_boosted_trees');
      expect(training.hyperparameters).toMatchObject({ trees: 40, learning_rate: 0.1, max_leaves: 31, max_depth: 6, l2: 1 });
      expect(training.fit.trees).toBeGreaterThan(0);
      expect(training.validation).toEqual({
        auc: expect.any(Number),
        log_loss: expect.any(Number),
        ece: expect.any(Number),
        rows: 1200,
        positives: expect.any(Number),
      });
      const comparison = training.champion_comparison;
      expect(comparison.champion_model).toMatchObject({ name: 'fraud_detector', version: '1', algorithm: 'logistic_regression' });
      expect(comparison.rows).toBe(1200);
      // The champion trained on the first 48,000 events of the same stream: these 6,000 included.
      expect(comparison.champion_trained_on_validation_window).toBe(true);
      expect(stdout).toMatch(/warning: the champion was trained on events of this validation window/);
      expect(comparison.challenger).toEqual(training.validation);
      expect(comparison.difference.auc).toBeCloseTo(comparison.challenger.auc - comparison.champion.auc, 12);
      const shipped = JSON.parse(await readFile(join(root, 'models/fraud_detector/1/manifest.json'), 'utf8'));
      expect(version.manifest.features).toEqual(shipped.features);
      expect(Object.keys((version.manifest.profile as { features: object }).features)).toEqual(['score', ...shipped.features]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});
