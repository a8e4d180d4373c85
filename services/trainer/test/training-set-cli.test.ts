/**
 * The training-set command line on hand-made files. Backfill mode: what the replay sets aside
 * is counted per source and named, an event far in the future is invalid as online (not the
 * watermark that makes every later event late), a source none of whose events could be
 * applied stops the run, and a file out of arrival order is warned about. Options: checked
 * before any work, and nothing written when the run fails.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraud } from '@tributary/shared';
import { trainingSetFromBackfill } from '../src/build-training-set.js';
import { ndjsonInput } from '../src/log-input.js';
import { runTrainerCli } from './cli.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const T0 = Date.UTC(2026, 0, 1);
const FAR = Date.UTC(2099, 0, 1);
const shipped = fileURLToPath(new URL('../../../models/fraud_detector/1', import.meta.url));

/** 50 transactions a minute apart, of 5 card holders and 3 merchants; the 11th (t10) claims a time in 2099. */
const transactions = Array.from({ length: 50 }, (_, i) => ({
  event_id: `t${i}`,
  user_id: `u${i % 5}`,
  merchant_id: `m${i % 3}`,
  amount: 10 + i,
  currency: 'EUR',
  country: 'FR',
  channel: 'web',
  ts: i === 10 ? FAR : T0 + i * MIN,
}));
const labels = transactions.map((t, i) => ({ request_id: t.event_id, label: i % 2, ts: T0 + i * MIN + 5_000 }));
const ndjson = (records: unknown[]) => records.map((r) => `${JSON.stringify(r)}\n`).join('');

describe('a backfill-mode training set from an events file', () => {
  it('sets an event far ahead of the time the file was read aside as invalid; the events after it are applied', async () => {
    const example = fraud.fraudExample();
    const manifest = JSON.parse(await readFile(join(shipped, 'manifest.json'), 'utf8')) as { features: string[] };
    const built = await trainingSetFromBackfill({
      events: new Map([['transactions', ndjsonInput('transactions.ndjson', ndjson(transactions))]]),
      rowsSource: 'transactions',
      labels: ndjsonInput('labels.ndjson', ndjson(labels)),
      model: { name: 'fraud_detector', version: '1', features: manifest.features },
      policy: { cutoff: T0 + 24 * 60 * MIN, unlabelled: 'drop', maturityMs: 0 },
      split: { validationFraction: 0.2 },
      sources: example.sources,
      groups: example.groups,
      catalog: example.catalog,
      requestFields: Object.keys(fraud.FraudRequestFieldsSchema.properties),
      allowedLatenessMs: 5 * MIN,
      readAt: T0 + 24 * 60 * MIN,
    });
    expect(built.set.stats.replay).toEqual([
      { source: 'transactions', accepted: 49, duplicates: 0, rejected: { late: 0, malformed: 0, invalid: 1 } },
    ]);
    expect(built.rejected).toEqual([
      {
        where: 'transactions.ndjson:11',
        detail:
          'invalid: ts: 2099-01-01T00:00:00.000Z is more than 60 minutes ahead of the time its record was read 2026-01-02T00:00:00.000Z',
      },
    ]);
    // The last transaction (u4 at minute 49) sees the card holder's 9 earlier ones, all within the hour (minutes 4, 9, ... 44).
    const last = built.set.rows.at(-1)!;
    expect(built.set.request_ids.at(-1)).toBe('t49');
    expect(last[manifest.features.indexOf('user_transactions:count_1h')]).toBe(9);
  });

  describe('on the command line', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tributary-backfill-inputs-'));
      await writeFile(join(dir, 'future.ndjson'), ndjson(transactions));
      const inOrder = transactions.map((t, i) => ({ ...t, ts: T0 + i * MIN }));
      await writeFile(join(dir, 'in-order.ndjson'), ndjson(inOrder));
      // Sorted by card holder, not by arrival: each holder's first event moves the watermark past the others' earlier ones.
      await writeFile(join(dir, 'by-user.ndjson'), ndjson([...inOrder].sort((a, b) => a.user_id.localeCompare(b.user_id) || a.ts - b.ts)));
      await writeFile(join(dir, 'labels.ndjson'), ndjson(labels));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });
    const build = (args: string[]) =>
      runTrainerCli(
        'training-set-cli.ts',
        ['backfill', '--labels', 'labels.ndjson', '--cutoff', String(T0 + 24 * 60 * MIN), '--format', 'ndjson', ...args],
        { cwd: dir },
      );

    it('prints the replay of each source, and names the event set aside', async () => {
      const future = await build(['--model', 'fraud_detector/1', '--events', 'future.ndjson']);
      expect(future.code).toBe(0);
      expect(future.stdout.trim().split('\n')).toHaveLength(49);
      expect(future.stderr).toMatch(
        /^ {2}replay of transactions: 50 records, 49 accepted \(0 with a duplicate event id\), 0 late, 1 invalid, 0 malformed$/m,
      );
      expect(future.stderr).toMatch(
        /^ {4}future\.ndjson:11: invalid: ts: 2099-01-01T00:00:00\.000Z is more than 60 minutes ahead of the time/m,
      );
      expect(future.stderr).not.toMatch(/WARNING/);
    }, 60_000);

    it('warns, naming the count and the likely cause, when many events were late', async () => {
      const byUser = await build(['--model', 'fraud_detector/1', '--events', 'by-user.ndjson']);
      expect(byUser.code).toBe(0);
      expect(byUser.stderr).toMatch(/replay of transactions: 50 records, 18 accepted \(0 with a duplicate event id\), 32 late, /);
      expect(byUser.stderr).toMatch(
        /^training-set: WARNING: 32 of the 50 events of source "transactions" \(64%\) were late .* Is the input in arrival order\?/m,
      );
      const inOrder = await build(['--model', 'fraud_detector/1', '--events', 'in-order.ndjson']);
      expect(inOrder.stderr).toMatch(/replay of transactions: 50 records, 50 accepted \(0 with a duplicate event id\), 0 late, /);
      expect(inOrder.stderr).not.toMatch(/WARNING/);
    }, 60_000);

    it('refuses a time after the latest a date can hold before any work, writing nothing', async () => {
      const common = [
        'backfill',
        '--model',
        'fraud_detector/1',
        '--events',
        'in-order.ndjson',
        '--labels',
        'labels.ndjson',
        '--out',
        'far.json',
      ];
      for (const times of [
        ['--cutoff', '9000000000000000'],
        ['--cutoff', 'now', '--validation-from', '9000000000000000'],
      ]) {
        const far = await runTrainerCli('training-set-cli.ts', [...common, ...times], { cwd: dir });
        expect([far.code, far.stderr]).toEqual([
          2,
          `training-set: ${times.at(-2)}: 9000000000000000 is after the latest time a date can hold (8640000000000000 epoch ms, +275760-09-13)\n`,
        ]);
      }
      // A lateness beyond what ALLOWED_LATENESS takes.
      const yearLate = await runTrainerCli('training-set-cli.ts', [...common, '--cutoff', 'now', '--allowed-lateness', '400d'], {
        cwd: dir,
      });
      expect([yearLate.code, yearLate.stderr]).toEqual([
        2,
        'training-set: --allowed-lateness: 400d is more than 365d (the most ALLOWED_LATENESS takes)\n',
      ]);
      // An option given twice: refused, not the last taken.
      const twice = await runTrainerCli('training-set-cli.ts', [...common, '--cutoff', 'now', '--cutoff', '1767312147567'], { cwd: dir });
      expect([twice.code, twice.stdout, twice.stderr]).toEqual([2, '', 'training-set: --cutoff is given twice\n']);
      // Options are checked before the inputs are read: a missing file is not even opened.
      const lateness = await build([
        '--model',
        'fraud_detector/1',
        '--events',
        'missing.ndjson',
        '--allowed-lateness',
        'soon',
        '--out',
        'far.json',
      ]);
      expect([lateness.code, lateness.stderr]).toEqual([2, expect.stringMatching(/^training-set: --allowed-lateness: /)]);
      expect(await readdir(dir)).not.toContain('far.json');
    }, 60_000);

    it('stops (exit 1, nothing written) on an input with no records, or a set with no training row', async () => {
      await writeFile(join(dir, 'empty.ndjson'), '');
      const cases = [
        [
          ['backfill', '--events', 'in-order.ndjson', '--labels', 'empty.ndjson', '--cutoff', 'now'],
          'the label file empty.ndjson holds no records: taken for the wrong file',
        ],
        [
          ['backfill', '--events', 'empty.ndjson', '--labels', 'labels.ndjson', '--cutoff', 'now'],
          'the event file empty.ndjson holds no records: taken for the wrong file',
        ],
        [
          ['log', '--predictions', 'empty.ndjson', '--labels', 'labels.ndjson', '--cutoff', 'now'],
          'the prediction-log file empty.ndjson holds no records: taken for the wrong file',
        ],
        [
          ['backfill', '--events', 'in-order.ndjson', '--labels', 'labels.ndjson', '--cutoff', '0'],
          'the training set has no rows: left out 50 after the cut-off, 0 younger than the maturity window, 0 without a label (50 labels arrived after the cut-off, 0 were for no row): check --cutoff and --maturity',
        ],
        [
          ['backfill', '--events', 'in-order.ndjson', '--labels', 'labels.ndjson', '--cutoff', 'now', '--validation-from', String(T0)],
          'the training set has no training rows: all 50 validate (from 2026-01-01T00:00:00.000Z on): check --validation-from or --validation-fraction',
        ],
      ] as const;
      for (const [args, message] of cases) {
        const refused = await runTrainerCli('training-set-cli.ts', ['--model', 'fraud_detector/1', ...args, '--out', 'none.json'], {
          cwd: dir,
        });
        expect([refused.code, refused.stderr]).toEqual([1, `training-set: ${message}\n`]);
      }
      expect(await readdir(dir)).not.toContain('none.json');
    }, 60_000);

    it('stops with one line and exit code 1 when its reader closed stdout', async () => {
      const closed = await runTrainerCli(
        'training-set-cli.ts',
        ['backfill', '--model', 'fraud_detector/1', '--events', 'in-order.ndjson', '--labels', 'labels.ndjson', '--cutoff', 'now'],
        { cwd: dir, closedStdout: true },
      );
      expect([closed.code, closed.stderr]).toEqual([1, 'training-set: stdout was closed before the end of the output (EPIPE)\n']);
    }, 60_000);

    it('refuses an --out that is one of its inputs (exit 2), the input kept', async () => {
      const before = await readFile(join(dir, 'in-order.ndjson'), 'utf8');
      const over = await build(['--model', 'fraud_detector/1', '--events', 'in-order.ndjson', '--out', './in-order.ndjson']);
      expect([over.code, over.stderr]).toEqual([
        2,
        'training-set: --out ./in-order.ndjson is the input --events in-order.ndjson: writing it would destroy what is read; give another file\n',
      ]);
      expect(await readFile(join(dir, 'in-order.ndjson'), 'utf8')).toBe(before);
    }, 60_000);

    it('refuses an option of the other mode (exit 2, naming it) rather than ignore it', async () => {
      for (const [mode, option, value] of [
        ['backfill', '--served-version', '1'],
        ['backfill', '--variant', 'all'],
        ['backfill', '--predictions', 'labels.ndjson'],
        ['log', '--allowed-lateness', '10m'],
        ['log', '--events', 'in-order.ndjson'],
      ] as const) {
        const inputs = mode === 'log' ? ['--predictions', 'labels.ndjson'] : ['--events', 'in-order.ndjson'];
        const other = mode === 'log' ? 'backfill' : 'log';
        const refused = await runTrainerCli(
          'training-set-cli.ts',
          [
            mode,
            '--model',
            'fraud_detector/1',
            '--labels',
            'labels.ndjson',
            '--cutoff',
            'now',
            ...inputs,
            option,
            value,
            '--out',
            'x.json',
          ],
          { cwd: dir },
        );
        expect([refused.code, refused.stderr]).toEqual([2, `training-set: ${option} is for the ${other} mode, not the ${mode} mode\n`]);
      }
      expect(await readdir(dir)).not.toContain('x.json');
    }, 60_000);

    it("log mode: takes each served version's values as the model encodes them, its registry saying how each served them", async () => {
      const registry = join(dir, 'registry');
      await cp(shipped, join(registry, 'fraud_detector', '1'), { recursive: true });
      await cp(shipped, join(registry, 'fraud_detector', '2'), { recursive: true });
      const v2 = JSON.parse(await readFile(join(shipped, 'manifest.json'), 'utf8')) as { features: string[] };
      await writeFile(
        join(registry, 'fraud_detector', '2', 'manifest.json'),
        JSON.stringify({ ...v2, version: '2', defaults: { 'user_transactions:count_1h': -1 } }),
      );
      const count = v2.features.indexOf('user_transactions:count_1h');
      const predictions = ['1', '1', '2', '7'].map((version, i) => ({
        request_id: `r${i}`,
        model: { name: 'fraud_detector', version },
        variant: 'champion',
        features: Object.fromEntries(v2.features.map((f) => [f, 0])),
        defaulted: i === 0 ? ['user_transactions:count_1h'] : [],
        predicted_at: T0 + i * MIN,
      }));
      await writeFile(join(dir, 'predictions.ndjson'), ndjson(predictions));
      await writeFile(
        join(dir, 'log-labels.ndjson'),
        ndjson(predictions.map((p) => ({ request_id: p.request_id, label: 1, ts: T0 + DAY }))),
      );
      const built = await runTrainerCli(
        'training-set-cli.ts',
        ['log', '--model', 'fraud_detector/2', '--predictions', 'predictions.ndjson', '--labels', 'log-labels.ndjson', '--cutoff', 'now'],
        // A relative registry is the caller's, as the file flags are.
        { cwd: dir, env: { MODEL_REGISTRY_DIR: 'registry' } },
      );
      expect(built.code).toBe(0);
      const set = JSON.parse(built.stdout) as { request_ids: string[]; rows: number[][] };
      expect(set.request_ids).toEqual(['r0', 'r1', 'r2']);
      // r0 was served v1's default (0) for a card holder without transactions: v2 reads -1 there; r1's 0 was a count.
      expect(set.rows.map((row) => row[count])).toEqual([-1, 0, 0]);
      expect(built.stderr).toMatch(
        /^ {2}encodings: 1 values served as another version's default replaced by v2's; left out 0 records of versions encoding the features otherwise, 1 of versions not in the registry$/m,
      );
      expect(built.stderr).toMatch(/^ {4}version 7 left out: its manifest is not known$/m);
    }, 60_000);

    it('stops (exit 1, nothing written) when none of the events of a source the model reads could be applied', async () => {
      // A model reading a merchant_labels feature, given transactions as its labelled transactions.
      const model = join(dir, 'with-labels');
      await cp(shipped, model, { recursive: true });
      const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8')) as { features: string[] };
      manifest.features = [...manifest.features, 'merchant_labels:label_mean_7d'];
      await writeFile(join(model, 'manifest.json'), JSON.stringify(manifest));
      const wrong = await build([
        '--model',
        model,
        '--events',
        'in-order.ndjson',
        '--events',
        'labelled_transactions=in-order.ndjson',
        '--out',
        'set.ndjson',
      ]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(
        /^training-set: none of the 50 events of source "labelled_transactions" could be applied \(0 late, 50 invalid, 0 malformed\)/m,
      );
      expect(await readdir(dir)).not.toContain('set.ndjson');
    }, 60_000);
  });
});
