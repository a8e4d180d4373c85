import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const shipped = join(root, 'models/fraud_detector/1');

describe('the shipped example model', () => {
  it('is exactly what the training script makes (same ONNX bytes, features and validation metrics)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'tributary-train-'));
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'services/trainer/src/train.ts', '--out', out], { cwd: root });
      expect(stdout).toMatch(/validation AUC 0\.\d+/);
      expect(await readFile(join(out, 'model.onnx'))).toEqual(await readFile(join(shipped, 'model.onnx')));
      const made = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
      const ours = JSON.parse(await readFile(join(shipped, 'manifest.json'), 'utf8'));
      expect({ ...made, created_at: null }).toEqual({ ...ours, created_at: null });
      // A model worth shipping: it separates fraud from the rest on later, unseen data.
      expect(ours.training.validation.auc).toBeGreaterThan(0.9);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});
