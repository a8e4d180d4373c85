import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
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
      // The score's bins reach into the decision region, which all its deciles lie below: edges at the
      // threshold and at the 0.99 and 0.999 quantiles, the last two bins holding 1% and 0.1% of the rows.
      const score = ours.profile.features.score as { edges: number[]; counts: number[]; count: number };
      expect(Math.max(...score.edges.slice(0, -3))).toBeLessThan(ours.threshold);
      expect(score.edges.at(-3)).toBe(ours.threshold);
      expect(score.counts.slice(-2).reduce((a, b) => a + b) / score.count).toBeCloseTo(0.01, 3);
      expect(score.counts.at(-1)! / score.count).toBeCloseTo(0.001, 4);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});

/** A set in the training-set CLI's JSON format: fraud where the amount is high and the card holder new. */
function trainingSet(rows: number) {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const features = ['request:amount', 'user_transactions:count_24h'];
  const data = Array.from({ length: rows }, () => [Math.round(next() * 1000), Math.floor(next() * 20)]);
  const labels = data.map(([amount, count]) => (amount! > 700 && count! < 5 ? 1 : next() < 0.02 ? 1 : 0));
  const start = Date.UTC(2026, 10, 1);
  const train = Math.floor(rows * 0.8);
  return {
    format: 'tributary.training-set/1',
    source: 'prediction_log',
    model: { name: 'fraud_detector', version: '1' },
    features,
    cutoff: start + rows * 60_000,
    label_policy: { unlabelled: 'negative', maturity_ms: 0 },
    split: { at: start + train * 60_000, train, validation: rows - train },
    request_ids: data.map((_, i) => `r${i}`),
    times: data.map((_, i) => start + i * 60_000),
    labels,
    label_sources: labels.map(() => 'label'),
    rows: data,
    stats: {},
  };
}

describe('training from a training set', () => {
  it('trains on the set, with its features and its time split, and says where the data came from', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-train-set-'));
    try {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(dir, 'set.json'), JSON.stringify(trainingSet(3000)));
      const { stdout } = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          'services/trainer/src/train.ts',
          '--algorithm',
          'gbt',
          '--trees',
          '40',
          '--training-set',
          join(dir, 'set.json'),
          '--version',
          '2',
          '--out',
          join(dir, 'v2'),
        ],
        { cwd: root },
      );
      expect(stdout).toMatch(/trained fraud_detector v2 \(gradient_boosted_trees\) on 2400 rows/);
      const manifest = JSON.parse(await readFile(join(dir, 'v2', 'manifest.json'), 'utf8'));
      expect(manifest.features).toEqual(['request:amount', 'user_transactions:count_24h']);
      expect(manifest.training.rows).toBe(2400);
      expect(manifest.training.validation.rows).toBe(600);
      expect(manifest.training.data).toMatch(/^training set from the prediction log of fraud_detector v1, labels as of 2026-11-03T/);
      expect(manifest.training.validation_window.from).toBe(new Date(Date.UTC(2026, 10, 1) + 2400 * 60_000).toISOString());
      // The rule is learnable: trees find it on the later, unseen rows.
      expect(manifest.training.validation.auc).toBeGreaterThan(0.9);

      await writeFile(join(dir, 'one-class.json'), JSON.stringify({ ...trainingSet(500), labels: new Array(500).fill(0) }));
      const refused = await run(
        process.execPath,
        ['--import', 'tsx', 'services/trainer/src/train.ts', '--training-set', join(dir, 'one-class.json'), '--out', join(dir, 'x')],
        {
          cwd: root,
        },
      ).catch((error: { stderr: string }) => error);
      expect((refused as { stderr: string }).stderr).toMatch(/both sides of the split need both labels/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses a set with cells that are not numbers, and wrong options, with a message and exit 1 or 2, writing nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-train-bad-'));
    const train = (args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'services/trainer/src/train.ts', ...args], { cwd: root }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
    try {
      const { writeFile } = await import('node:fs/promises');
      const set = trainingSet(500);
      set.rows[3]![1] = '7' as unknown as number;
      await writeFile(join(dir, 'strings.json'), JSON.stringify(set));
      const refused = await train(['--training-set', join(dir, 'strings.json'), '--out', join(dir, 'x')]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /^train: failed: --training-set .*: rows\[3\]\[1\] \("user_transactions:count_24h"\) is "7", expected a number$/m,
      );
      // A file that cannot be read is told apart from one that is not JSON.
      const missing = await train(['--training-set', join(dir, 'missing.json'), '--out', join(dir, 'x')]);
      expect([missing.code, missing.stderr]).toEqual([
        1,
        expect.stringMatching(/^train: failed: --training-set .*missing\.json: cannot read it \(ENOENT: no such file or directory/m),
      ]);
      await writeFile(join(dir, 'truncated.json'), '{"format":');
      const truncated = await train(['--training-set', join(dir, 'truncated.json'), '--out', join(dir, 'x')]);
      expect([truncated.code, truncated.stderr]).toEqual([1, expect.stringMatching(/truncated\.json: not a JSON training set \(/)]);
      for (const [args, message] of [
        [['--algorithm', 'toString'], /--algorithm must be one of logistic_regression, gbt, got toString/],
        [['--version', '../../etc'], /--version must be letters/],
        [['--rows', 'abc'], /--rows must be an integer/],
        [['--frobnicate'], /Unknown option '--frobnicate'/],
        // Out of the model's range: told before any data is built.
        [['--algorithm', 'gbt', '--learning-rate', '2'], /^train: --learning-rate must be a number in \(0, 1\], got 2$/m],
        [['--algorithm', 'gbt', '--trees', '2.5'], /^train: --trees must be an integer in \[1, 10000\], got 2\.5$/m],
        [['--algorithm', 'gbt', '--trees', '1e9'], /^train: --trees must be an integer in \[1, 10000\], got 1000000000$/m],
        [['--seed', ''], /^train: --seed is blank: give a number$/m],
        [['--seed', '1e20'], /^train: --seed must be an integer from 0 to 9007199254740991$/m],
        // Settings of the trees, for a model that has none: refused, not ignored.
        [['--trees', 'abc'], /^train: --trees is only for --algorithm gbt$/m],
        [['--algorithm', 'logistic_regression', '--max-depth', '3'], /^train: --max-depth is only for --algorithm gbt$/m],
      ] as const) {
        const wrong = await train([...args, '--out', join(dir, 'x')]);
        expect([wrong.code, wrong.stderr]).toEqual([2, expect.stringMatching(message)]);
        expect(wrong.stderr).not.toMatch(/\n\s+at /);
      }
      await expect(readdir(dir).then((files) => files.sort())).resolves.toEqual(['strings.json', 'truncated.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('gradient-boosted trees on a training window whose first seven eighths hold one class', () => {
  it('are fitted on the whole window, without early stopping, rather than failing', async () => {
    const { checkTrainingSet, datasetOf, trainModel } = await import('../src/train-model.js');
    const set = trainingSet(200) as unknown as Parameters<typeof checkTrainingSet>[0];
    // 160 training rows, their positives only in the last eighth (rows 150-159), which early stopping would watch.
    set.labels = set.labels.map((_, i) => ((i >= 150 && i < 160) || (i >= 190 && i < 196) ? 1 : 0));
    set.split = { ...set.split, at: set.times[160]!, train: 160, validation: 40 };
    checkTrainingSet(set);
    const { dataset, cut, origin } = datasetOf(set);
    const trained = await trainModel({
      dataset,
      cut,
      trainingSet: origin,
      algorithm: 'gbt',
      name: 'fraud_detector',
      version: '2',
      seed: 1,
    });
    expect(trained.manifest.training.rows).toBe(160);
    expect(trained.manifest.training.fit).toMatchObject({ early_stopping_rows: 0, early_stopping_log_loss: null });
  });
});

describe('a training set with times no date can hold', () => {
  it('is refused before training (the manifest shows its windows and cut-off as dates)', async () => {
    const { checkTrainingSet } = await import('../src/train-model.js');
    const set = trainingSet(500) as unknown as Parameters<typeof checkTrainingSet>[0];
    expect(() => checkTrainingSet({ ...set, cutoff: 9e15 })).toThrow(
      'cutoff is 9000000000000000, expected epoch ms (up to 8640000000000000)',
    );
    const times = [...set.times];
    times[499] = 9e15;
    expect(() => checkTrainingSet({ ...set, times })).toThrow('times[499] is 9000000000000000, expected epoch ms (up to 8640000000000000)');
    expect(() => checkTrainingSet(set)).not.toThrow();
  });
});

describe('feature types of an exported model', () => {
  it("are written into the manifest (the set model's; none for a set of a model without them) and pass the registry", async () => {
    const { datasetOf, trainModel, writeModelVersion } = await import('../src/train-model.js');
    const { MemoryRoutingStore, ModelRegistry, readModelVersion } = await import('@tributary/inference');
    const { fraud, planModelFeatures } = await import('@tributary/shared');
    const catalog = fraud.fraudExample().catalog;
    let seed = 11;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const rows = 1000;
    const features = ['request:amount', 'request:channel', 'user_transactions:count_24h'];
    // Rows as the prediction log holds them: the channel already encoded as its index in the vocabulary.
    const data = Array.from({ length: rows }, () => [Math.round(next() * 1000), Math.floor(next() * 3), Math.floor(next() * 20)]);
    const labels = data.map(([amount, channel]) => (amount! > 600 && channel === 0 ? 1 : next() < 0.05 ? 1 : 0));
    const start = Date.UTC(2026, 10, 1);
    const feature_types = {
      'request:amount': { type: 'number' as const },
      'request:channel': { type: 'category' as const, vocabulary: ['web', 'app', 'pos'] },
      'user_transactions:count_24h': { type: 'integer' as const },
    };
    const set = {
      format: 'tributary.training-set/1' as const,
      source: 'prediction_log' as const,
      model: { name: 'fraud_detector', version: '4', feature_types, defaults: { 'request:channel': 'web' } },
      features,
      cutoff: start + rows * 60_000,
      label_policy: { unlabelled: 'negative' as const, maturity_ms: 0 },
      split: { at: start + 800 * 60_000, train: 800, validation: 200 },
      request_ids: data.map((_, i) => `r${i}`),
      times: data.map((_, i) => start + i * 60_000),
      labels: labels as (0 | 1)[],
      label_sources: labels.map(() => 'label' as const),
      rows: data,
      stats: { join: {} as never, labels_rejected: 0, records_rejected: 0 },
    };
    const dir = await mkdtemp(join(tmpdir(), 'tributary-typed-'));
    const registry = new ModelRegistry(
      join(dir, 'registry'),
      new MemoryRoutingStore(),
      (manifest) => void planModelFeatures(manifest, catalog),
    );
    try {
      for (const [version, trainingSet] of [
        ['5', set],
        ['6', { ...set, model: { name: 'fraud_detector', version: '1' } }],
      ] as const) {
        const { dataset, cut } = datasetOf(trainingSet);
        const trained = await trainModel({
          dataset,
          cut,
          trainingSet,
          algorithm: 'logistic_regression',
          name: 'fraud_detector',
          version,
          seed: 1,
        });
        await writeModelVersion(join(dir, version), trained);
        const read = await readModelVersion(join(dir, version));
        await registry.register(read.manifest, read.bytes);
        const stored = (await registry.version('fraud_detector', version)).manifest;
        if (version === '5') {
          expect(stored.feature_types).toEqual(feature_types);
          expect(stored.defaults).toEqual({ 'request:channel': 'web' });
          // The category is profiled as categories (its indexes, as the prediction log holds them), the rest on bins.
          const profile = stored.profile as { features: Record<string, { kind: string; categories?: string[] }> };
          expect(profile.features['request:channel']!.kind).toBe('categorical');
          expect([...profile.features['request:channel']!.categories!].sort()).toEqual(['0', '1', '2']);
          expect(profile.features['request:amount']!.kind).toBe('numeric');
        } else {
          // A set built for a model without types: its values were served as numbers, and stay so.
          expect(stored.feature_types).toBeUndefined();
        }
      }
      // The registry checks what the trainer wrote: a type the service cannot produce is refused.
      const read = await readModelVersion(join(dir, '5'));
      await expect(
        registry.register(
          { ...read.manifest, version: '7', feature_types: { ...feature_types, 'request:channel': { type: 'boolean' } } },
          read.bytes,
        ),
      ).rejects.toThrow('feature "request:channel" is declared boolean, but request field "channel" is a string');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('where a version is written', () => {
  const train = (args: string[], registry: string, env: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', 'services/trainer/src/train.ts', '--rows', '3000', ...args], {
      cwd: root,
      env: { ...process.env, MODEL_REGISTRY_DIR: registry, ...env },
    }).then(
      ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
  const held = async (dir: string) => {
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { name: string; version: string; sha256: string };
    return { name: manifest.name, version: manifest.version, sha256: manifest.sha256 };
  };

  it("goes to the registry folder of the model and version trained; another version's folder, or the same version without --force, is never written over", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-train-out-'));
    const registry = join(dir, 'registry');
    const v1 = join(registry, 'fraud_detector', '1');
    try {
      await cp(shipped, v1, { recursive: true });
      const shippedV1 = await held(v1);

      const v2 = await train(['--version', '2'], registry);
      expect(v2.code).toBe(0);
      expect(v2.stdout).toMatch(/trained fraud_detector v2 .*wrote .*registry\/fraud_detector\/2$/m);
      expect(await held(join(registry, 'fraud_detector', '2'))).toMatchObject({ name: 'fraud_detector', version: '2' });
      expect(await held(v1)).toEqual(shippedV1);

      // The same version again: refused before any training, unless --force.
      const again = await train([], registry);
      expect([again.code, again.stderr]).toEqual([
        1,
        `train: ${v1} already holds fraud_detector version 1: not replaced (--force replaces it)\n`,
      ]);
      // Another version's folder: refused, even with --force.
      const other = await train(['--version', '3', '--out', v1, '--force'], registry);
      expect([other.code, other.stderr]).toEqual([
        1,
        expect.stringMatching(/holds fraud_detector version 1, not fraud_detector version 3: not replaced/),
      ]);
      // A registry folder named for another version (the registry would list it as damaged).
      const misnamed = await train(['--version', '3', '--out', join(registry, 'fraud_detector', '4')], registry);
      expect([misnamed.code, misnamed.stderr]).toEqual([2, expect.stringMatching(/the registry's folder of version 4, not of version 3/)]);
      // A folder that is not a version at all is not replaced either.
      await writeFile(join(dir, 'notes.txt'), 'mine');
      const notVersion = await train(['--version', '3', '--out', dir], registry);
      expect([notVersion.code, notVersion.stderr]).toEqual([1, expect.stringMatching(/is not empty and holds no model version/)]);
      expect(await held(v1)).toEqual(shippedV1);

      // A training set of another model goes to that model's folder; a relative registry is the
      // caller's, as under `npm run train -w services/trainer` (which runs in services/trainer).
      await writeFile(join(dir, 'churn.json'), JSON.stringify({ ...trainingSet(1000), model: { name: 'churn', version: '7' } }));
      const churn = await train(['--training-set', 'churn.json', '--version', '1'], 'registry', { INIT_CWD: dir });
      expect(churn.code).toBe(0);
      expect(await held(join(registry, 'churn', '1'))).toMatchObject({ name: 'churn', version: '1' });
      expect(await held(v1)).toEqual(shippedV1);

      // --force rebuilds the version in place: a whole version, nothing left beside it.
      const rebuilt = await train(['--force'], registry);
      expect(rebuilt.code).toBe(0);
      const { readModelVersion } = await import('@tributary/inference');
      const read = await readModelVersion(v1);
      expect(read.manifest).toMatchObject({ name: 'fraud_detector', version: '1', training: { rows: 2400 } });
      expect(read.manifest.sha256).not.toBe(shippedV1.sha256);
      expect((await readdir(v1)).sort()).toEqual(['manifest.json', 'model.onnx']);
      expect((await readdir(join(registry, 'fraud_detector'))).sort()).toEqual(['1', '2']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('replaces a version in place so that a stop at any step leaves a whole version, the old one or the new', async () => {
    const { writeModelVersion } = await import('../src/train-model.js');
    const { readModelVersion } = await import('@tributary/inference');
    const dir = await mkdtemp(join(tmpdir(), 'tributary-replace-'));
    try {
      const old = await readModelVersion(shipped);
      // Another model file (the check reads the sha256, not the ONNX graph) and its manifest.
      const bytes = Buffer.concat([old.bytes, Buffer.from([0])]);
      const manifest = { ...old.manifest, sha256: createHash('sha256').update(bytes).digest('hex'), created_at: 'new' };
      const steps: string[] = [];
      await cp(shipped, join(dir, 'probe'), { recursive: true });
      await writeModelVersion(
        join(dir, 'probe'),
        { manifest: manifest as never, bytes },
        { replace: true, onStep: (s) => void steps.push(s) },
      );
      expect(steps.length).toBeGreaterThan(1);
      for (let stop = 0; stop < steps.length; stop++) {
        const version = join(dir, String(stop));
        await cp(shipped, version, { recursive: true });
        let at = 0;
        await expect(
          writeModelVersion(
            version,
            { manifest: manifest as never, bytes },
            {
              replace: true,
              onStep: () => {
                if (at++ === stop) throw new Error('stopped');
              },
            },
          ),
        ).rejects.toThrow('stopped');
        const read = await readModelVersion(version);
        const expected = stop === steps.length - 1 ? ['new'] : [old.manifest.created_at, 'new'];
        expect(expected, `stopped after "${steps[stop]}"`).toContain(read.manifest.created_at);
      }
      expect((await readModelVersion(join(dir, 'probe'))).manifest.created_at).toBe('new');
      expect((await readdir(join(dir, 'probe'))).sort()).toEqual(['manifest.json', 'model.onnx']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
