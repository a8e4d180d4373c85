/**
 * The retrain loop on hand-made prediction logs and labels, with a registry in a temporary
 * directory (holding a copy of the shipped model as the champion) and the routing in memory:
 * a set the champion misreads gives a new version, registered and in shadow; a one-class set
 * and a challenger worse than the champion are refused and register nothing.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryRoutingStore, ModelRegistry } from '@tributary/inference';
import { createRandom, fraud, planFeatures } from '@tributary/shared';
import { InputError, ndjsonInput } from '../src/log-input.js';
import { nextVersion, retrain, RetrainRefused } from '../src/retrain.js';
import { VersionDirectoryRefused } from '../src/train-model.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const T0 = Date.UTC(2026, 10, 1);
const ROWS = 1200;

/** What a row's features and label are: `burst` fraud (concept drift) or the `classic` large foreign web purchase. */
type Pattern = (i: number, random: ReturnType<typeof createRandom>) => { features: Record<string, number>; label: 0 | 1 };

function row(random: ReturnType<typeof createRandom>, fraudulent: boolean, style: 'burst' | 'classic'): Record<string, number> {
  const amount = style === 'classic' && fraudulent ? 300 + random.next() * 700 : 10 + random.next() * 60;
  const burst = style === 'burst' && fraudulent;
  const count10m = burst ? 3 + Math.floor(random.next() * 4) : Math.floor(random.next() * 2);
  const mean = 20 + random.next() * 40;
  return {
    'user_transactions:count_10m': count10m,
    'user_transactions:count_1h': count10m + Math.floor(random.next() * 3),
    'user_transactions:count_24h': count10m + 5 + Math.floor(random.next() * 10),
    'user_transactions:amount_sum_1h': amount * (count10m + 1),
    'user_transactions:amount_mean_24h': mean,
    'user_transactions:amount_max_24h': Math.max(mean * 2, amount),
    'merchant_transactions:count_1h': Math.floor(random.next() * 20),
    'merchant_transactions:count_24h': 50 + Math.floor(random.next() * 200),
    'request:amount': amount,
    'on_demand:log_amount': Math.log1p(amount),
    'on_demand:amount_to_user_mean_24h': amount / mean,
    'on_demand:seconds_since_last_txn': burst ? 5 + random.next() * 30 : 600 + random.next() * 40_000,
    'on_demand:country_changed': style === 'classic' && fraudulent && random.next() < 0.7 ? 1 : 0,
    'on_demand:channel_web': style === 'classic' && fraudulent ? 1 : random.next() < 0.33 ? 1 : 0,
    'on_demand:channel_app': random.next() < 0.33 ? 1 : 0,
  };
}

const burstFraud: Pattern = (_i, random) => {
  const label = random.next() < 0.1 ? 1 : 0;
  return { features: row(random, label === 1, 'burst'), label };
};
const oneClass: Pattern = (_i, random) => ({ features: row(random, false, 'burst'), label: 0 });
/** Training rows labelled at random, validation rows with the classic fraud the champion knows: a challenger can only do worse. */
const noiseThenClassic: Pattern = (i, random) => {
  if (i < ROWS * 0.8) return { features: row(random, random.next() < 0.5, 'burst'), label: random.next() < 0.1 ? 1 : 0 };
  const label = random.next() < 0.1 ? 1 : 0;
  return { features: row(random, label === 1, 'classic'), label };
};

/** A prediction log of the champion (v1) with each request's label arriving a minute later. */
function logs(pattern: Pattern) {
  const random = createRandom(11);
  const predictions: string[] = [];
  const labels: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    const at = T0 + i * 1000;
    const { features, label } = pattern(i, random);
    const request_id = `r${i}`;
    predictions.push(
      JSON.stringify({ request_id, model: { name: 'fraud_detector', version: '1' }, variant: 'champion', features, predicted_at: at }),
    );
    // A shadow's prediction of the same request: not a training row.
    predictions.push(
      JSON.stringify({ request_id, model: { name: 'fraud_detector', version: '9' }, variant: 'shadow', features, predicted_at: at }),
    );
    labels.push(JSON.stringify({ request_id, label, ts: at + 60_000 }));
  }
  return {
    predictions: ndjsonInput('predictions.ndjson', predictions.join('\n')),
    labels: ndjsonInput('labels.ndjson', labels.join('\n')),
    cutoff: T0 + ROWS * 1000 + 60_000,
  };
}

describe('retrain', () => {
  let dir: string;
  let routes: MemoryRoutingStore;
  let registry: ModelRegistry;
  const catalog = fraud.fraudExample().catalog;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-retrain-test-'));
    await cp(join(root, 'models/fraud_detector/1'), join(dir, 'fraud_detector/1'), { recursive: true });
    routes = new MemoryRoutingStore();
    registry = new ModelRegistry(dir, routes, (manifest) => void planFeatures(manifest.features, catalog, manifest.defaults ?? {}));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('numbers the next version past damaged folders too (versions are never written over one)', async () => {
    await mkdir(join(dir, 'fraud_detector/2'));
    await writeFile(join(dir, 'fraud_detector/2/manifest.json'), '{"name":');
    expect(await nextVersion(registry, 'fraud_detector')).toBe('3');
  });

  const run = (pattern: Pattern, extra: { minAucGain?: number; shadow?: boolean; out?: string } = {}) => {
    const { predictions, labels, cutoff } = logs(pattern);
    const lines: string[] = [];
    const result = retrain({
      model: 'fraud_detector',
      registry,
      predictions,
      labels,
      policy: { cutoff, unlabelled: 'drop', maturityMs: 0 },
      trees: { trees: 40, learningRate: 0.1, maxLeaves: 15, maxDepth: 4 },
      by: 'test',
      report: (line) => lines.push(line),
      ...extra,
    });
    return { result, lines };
  };
  it('refuses a set too small to train on, saying how many records could not be read', async () => {
    const { labels, cutoff } = logs(burstFraud);
    const refused = await retrain({
      model: 'fraud_detector',
      registry,
      predictions: ndjsonInput('predictions.ndjson', '{"not":"a prediction"}\n{"request_id":\n'),
      labels,
      policy: { cutoff, unlabelled: 'drop', maturityMs: 0 },
      by: 'test',
      report: () => {},
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RetrainRefused);
    expect((refused as RetrainRefused).reason).toBe('too_small');
    expect((refused as Error).message).toMatch(/from 2 prediction-log records \(2 could not be read\)/);
  });

  it('takes an input with no records for the wrong file, naming it, and registers nothing', async () => {
    const { predictions, labels, cutoff } = logs(burstFraud);
    for (const [given, named] of [
      [{ predictions, labels: ndjsonInput('labels.ndjson', '') }, 'the label file labels.ndjson'],
      [{ predictions: ndjsonInput('predictions.ndjson', '\n'), labels }, 'the prediction-log file predictions.ndjson'],
    ] as const) {
      const refused = retrain({
        model: 'fraud_detector',
        registry,
        ...given,
        policy: { cutoff, unlabelled: 'drop', maturityMs: 0 },
        by: 'test',
      });
      await expect(refused).rejects.toThrow(InputError);
      await expect(refused).rejects.toThrow(`${named} holds no records: taken for the wrong file`);
    }
    expect(await registry.versions('fraud_detector')).toHaveLength(1);
  });

  it('refuses a blank `by` or `reason` (kept in the audit log) before anything is read', async () => {
    const { predictions, labels, cutoff } = logs(burstFraud);
    const common = {
      model: 'fraud_detector',
      registry,
      predictions,
      labels,
      policy: { cutoff, unlabelled: 'drop' as const, maturityMs: 0 },
    };
    await expect(retrain({ ...common, by: ' ' })).rejects.toThrow('retrain: `by` (who retrains) cannot be blank');
    await expect(retrain({ ...common, by: 'test', reason: '' })).rejects.toThrow('retrain: `reason` cannot be blank');
    expect(await routes.get('fraud_detector')).toBeNull();
  });

  // The version folders (beside them, the routing record: see ModelRegistry.record).
  const versions = async () =>
    (await readdir(join(dir, 'fraud_detector'), { withFileTypes: true }))
      .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
      .sort();

  it('trains the next version on the served predictions, registers it and starts it as a shadow of the champion', async () => {
    const { result, lines } = run(burstFraud);
    const done = await result;
    expect(done.champion).toBe('1');
    expect(done.version).toBe('2');
    // One row per request: the shadow's predictions of the same requests are not rows.
    expect(done.set.rows).toBe(ROWS);
    expect(done.set.positives).toBeGreaterThan(50);
    expect(done.comparison.rows).toBe(done.set.validation);
    expect(done.comparison.difference.auc).toBeGreaterThanOrEqual(0);
    expect(await versions()).toEqual(['1', '2']);
    const manifest = (await registry.version('fraud_detector', '2')).manifest;
    expect(manifest.training.algorithm).toBe('gradient_boosted_trees');
    expect((manifest.training.champion_comparison as { champion_model: { version: string } }).champion_model.version).toBe('1');
    // The champion still answers; the new version is scored beside it.
    const routing = await routes.get('fraud_detector');
    expect(routing).toMatchObject({ champion: '1', policy: { kind: 'champion' }, shadows: ['2'] });
    expect((await registry.audit('fraud_detector', 1))[0]).toMatchObject({
      action: 'rollout',
      from: 'champion 1',
      to: 'champion 1; shadows 2',
      by: 'test',
    });
    // Each step's figures are reported.
    expect(lines.join('\n')).toMatch(/training set: 1200 rows \(960 train, 240 validation\), \d+ positives/);
    expect(lines.join('\n')).toMatch(/same 240 validation rows/);
    expect(lines.join('\n')).toMatch(/registered fraud_detector v2/);
    expect(lines.at(-1)).toBe(`routing: champion 1; shadows 2 (revision ${routing!.revision})`);

    // A second turn takes the next free number and keeps the earlier shadow.
    const again = await run(burstFraud).result;
    expect(again.version).toBe('3');
    expect((await routes.get('fraud_detector'))!.shadows).toEqual(['2', '3']);
  }, 120_000);

  it('refuses, before training, an --out folder holding another version, and keeps that folder as it was', async () => {
    const out = join(dir, 'kept');
    await cp(join(root, 'models/fraud_detector/1'), out, { recursive: true });
    const before = await readFile(join(out, 'manifest.json'), 'utf8');
    const { result, lines } = run(burstFraud, { out });
    const error = await result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VersionDirectoryRefused);
    expect((error as Error).message).toBe(
      `${out} holds fraud_detector version 1, not fraud_detector version 2: not replaced (write fraud_detector version 2 to a folder of its own)`,
    );
    expect(lines.join('\n')).not.toMatch(/trained/);
    expect(await readFile(join(out, 'manifest.json'), 'utf8')).toBe(before);
    expect(await versions()).toEqual(['1']);
  });

  it("takes an earlier champion's predictions as the current champion encodes them (its registry manifest)", async () => {
    // Version 2, the champion now, reads -1 for a card holder without transactions in the hour; version 1 served 0.
    const manifest = JSON.parse(await readFile(join(dir, 'fraud_detector/1/manifest.json'), 'utf8')) as Record<string, unknown>;
    await cp(join(dir, 'fraud_detector/1'), join(dir, 'fraud_detector/2'), { recursive: true });
    await writeFile(
      join(dir, 'fraud_detector/2/manifest.json'),
      JSON.stringify({ ...manifest, version: '2', defaults: { 'user_transactions:count_1h': -1 } }),
    );
    // The log's records (of version 1) carry no list of defaulted features: which 0 was a default cannot be told.
    const { result, lines } = run(burstFraud);
    const error = await result.catch((e: unknown) => e);
    expect(lines[0]).toMatch(/^champion: fraud_detector v2 /);
    expect(lines).toContain(
      "encodings: 0 values served as an earlier champion's default replaced by v2's; left out 1200 predictions of versions encoding the features otherwise or not in the registry (version 1: other defaults, and records without their defaulted list)",
    );
    expect(error).toBeInstanceOf(RetrainRefused);
    expect((error as RetrainRefused).reason).toBe('too_small');
  });

  it('registers without a shadow when told not to', async () => {
    const done = await run(burstFraud, { shadow: false }).result;
    expect(done.version).toBe('2');
    expect(await versions()).toEqual(['1', '2']);
    expect((await routes.get('fraud_detector'))!.shadows).toEqual([]);
  }, 120_000);

  it('refuses a one-class set and registers nothing', async () => {
    const error = await run(oneClass).result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetrainRefused);
    expect((error as RetrainRefused).reason).toBe('one_class');
    expect((error as Error).message).toMatch(/one class only \(0 positives in 1200 rows\)/);
    expect(await versions()).toEqual(['1']);
    expect((await routes.get('fraud_detector'))!.shadows).toEqual([]);
  }, 120_000);

  it('refuses a challenger worse than the champion, without registering it', async () => {
    const { result, lines } = run(noiseThenClassic);
    const error = await result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetrainRefused);
    expect((error as RetrainRefused).reason).toBe('worse_than_champion');
    expect((error as Error).message).toMatch(
      /the challenger's AUC 0\.\d+ is -0\.\d+ against the champion's [01]\.\d+ on the same 240 validation rows/,
    );
    // The comparison was made and shown, then nothing registered or routed.
    expect(lines.join('\n')).toMatch(/same 240 validation rows/);
    expect(await versions()).toEqual(['1']);
    expect(await registry.versions('fraud_detector')).toHaveLength(1);
    expect((await routes.get('fraud_detector'))!.shadows).toEqual([]);
    // A margin that allows it lets the same challenger through.
    const allowed = await run(noiseThenClassic, { minAucGain: -1 }).result;
    expect(allowed.version).toBe('2');
  }, 120_000);
});

describe('npm run retrain', () => {
  const cli = fileURLToPath(new URL('../src/retrain-cli.ts', import.meta.url));
  const runCli = async (args: string[], env: Record<string, string>) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['REDIS_URL', 'KAFKA_BROKERS'].includes(k)));
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, ...args], {
        cwd: root,
        env: { ...clean, ...env },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      return error as { code: number; stdout: string; stderr: string };
    }
  };

  it('says what is wrong with its options (exit code 2), and that the routing needs REDIS_URL', async () => {
    const noRedis = await runCli(['--predictions', 'p.ndjson', '--labels', 'l.ndjson'], {});
    expect(noRedis.code).toBe(2);
    expect(noRedis.stderr).toMatch(/retrain: REDIS_URL is not set: the champion and the shadows are read from and written to the routing/);
    const badGain = await runCli(['--min-auc-gain', 'x'], {});
    expect(badGain.code).toBe(2);
    expect(badGain.stderr).toMatch(/--min-auc-gain must be a number/);
    const both = await runCli(['--shadow', '--no-shadow'], {});
    expect(both.stderr).toMatch(/give --shadow or --no-shadow, not both/);
  }, 60_000);

  it('checks every option before Redis is reached or an input opened: times, blank numbers, too many trees, a blank --by or --reason', async () => {
    // Nothing listens there, and the inputs do not exist: a wrong option must be said first.
    const env = { REDIS_URL: 'redis://127.0.0.1:1' };
    const inputs = ['--predictions', 'missing-predictions.ndjson', '--labels', 'missing-labels.ndjson'];
    for (const [args, message] of [
      [['--cutoff', 'soon'], '--cutoff: "soon" is not a time (epoch ms, an RFC 3339 date-time with a zone, or now)'],
      [['--maturity', 'a while'], /^--maturity: /],
      [['--seed', ''], '--seed is blank: give a number'],
      [['--min-auc-gain', ' '], '--min-auc-gain is blank: give a number'],
      [['--validation-fraction', ''], '--validation-fraction is blank: give a number'],
      [['--trees', ''], '--trees is blank: give a number'],
      [['--trees', '1e9'], '--trees must be an integer in [1, 10000], got 1000000000'],
      [['--algorithm', 'logistic_regression', '--trees', '50'], '--trees is only for --algorithm gbt'],
      [['--seed', '1e20'], '--seed must be an integer from 0 to 9007199254740991'],
      [['--reason', 'a\nb'], '--reason has a control character (a line break, a tab); give it on one line (kept in the audit log)'],
      [['--by', ' '], '--by names who retrains (kept in the audit log): it cannot be blank'],
      [['--reason', ''], '--reason says why (kept in the audit log): it cannot be blank; leave it out for the default'],
    ] as const) {
      const refused = await runCli([...inputs, ...args], env);
      expect(refused.code).toBe(2);
      const said = refused.stderr.replace(/^retrain: /, '').trimEnd();
      if (typeof message === 'string') expect(said).toBe(message);
      else expect(said).toMatch(message);
      expect(refused.stderr.split('\n')).toHaveLength(2);
    }
  }, 120_000);
});
