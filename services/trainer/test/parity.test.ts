/**
 * Both ways to build a training set give the same rows: requests served by the real
 * inference app (features written by the real pipeline into the in-memory store) are logged;
 * the training set from that prediction log must equal, row for row and bit for bit, the
 * one the backfill builds from the transactions topic, because both vectors are assembled
 * by the same serving code from the same state at the same instant.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraud, type FeatureCatalog } from '@tributary/shared';
import { readModelVersion } from '@tributary/inference';
import { trainingSetFromBackfill, trainingSetFromPredictionLog, type ModelFeatures, type TrainingSet } from '../src/build-training-set.js';
import { readTopic } from '../src/log-input.js';
import type { LabelPolicy } from '../src/training-set.js';
import { runTrainerCli } from './cli.js';
import { startOnlineScenario, type OnlineScenario } from './online-scenario.js';

const HOUR = 3_600_000;
let scenario: OnlineScenario;
beforeAll(async () => {
  scenario = await startOnlineScenario({ count: 90, spanMs: 3 * HOUR, scoreEvery: 3, seed: 7 });
}, 60_000);
afterAll(async () => {
  await scenario?.close();
});

describe('training sets from the prediction log and from the backfill', () => {
  it('hold the same rows, features and labels for the same requests', async () => {
    const { eventLog, scored } = scenario;
    const manifest = (await readModelVersion(new URL('../../../models/fraud_detector/1', import.meta.url).pathname)).manifest;
    const model: ModelFeatures = { name: manifest.name, version: manifest.version, features: manifest.features };
    // Labels for all but every fifth request; one arrives only after the cut-off.
    const cutoff = Date.now() + 60_000;
    const labelled = scored.filter((_, i) => i % 5 !== 4);
    await eventLog.publish(
      'labels',
      labelled.map((s, i) => ({
        key: s.body.request_id,
        value: JSON.stringify({ request_id: s.body.request_id, label: i % 2, ts: i === 0 ? cutoff + HOUR : s.at + 10 * 60_000 }),
      })),
    );
    const policy: LabelPolicy = { cutoff, unlabelled: 'drop', maturityMs: 0 };
    const split = { validationFraction: 0.25 };

    const fromLog = await trainingSetFromPredictionLog({
      predictions: await readTopic(eventLog, 'predictions'),
      labels: await readTopic(eventLog, 'labels'),
      model,
      policy,
      split,
      variant: 'champion',
    });
    const example = fraud.fraudExample();
    const catalog: FeatureCatalog = example.catalog;
    const fromBackfill = await trainingSetFromBackfill({
      events: new Map([['transactions', await readTopic(eventLog, 'transactions')]]),
      rowsSource: 'transactions',
      labels: await readTopic(eventLog, 'labels'),
      model,
      policy,
      split,
      sources: example.sources,
      groups: example.groups,
      catalog,
      requestFields: Object.keys(fraud.FraudRequestFieldsSchema.properties),
      allowedLatenessMs: 300_000,
    });

    const log = fromLog.set;
    const replayed = fromBackfill.set;
    expect(fromLog.rejected).toEqual([]);
    expect(fromBackfill.rejected).toEqual([]);
    // Every labelled request but the one whose label came too late; no unscored transaction has a label.
    expect(log.request_ids).toHaveLength(labelled.length - 1);
    expect(log.request_ids).not.toContain(labelled[0]!.body.request_id);
    expect(replayed.request_ids).toEqual(log.request_ids);
    expect(replayed.times).toEqual(log.times);
    expect(replayed.labels).toEqual(log.labels);
    expect(replayed.split).toEqual(log.split);
    expect(replayed.rows).toEqual(log.rows);
    // The log holds the vector the app explained for each request, as the model read it (float32).
    const served = new Map(scored.map((s) => [s.body.request_id, s]));
    log.request_ids.forEach((id, i) => expect(log.rows[i]).toEqual(model.features.map((f) => Math.fround(served.get(id)!.features[f]!))));
    // Not a comparison of defaults: the stored features moved.
    const column = (name: string) => log.rows.map((row) => row[model.features.indexOf(name)]!);
    expect(new Set(column('user_transactions:count_1h')).size).toBeGreaterThan(3);
    expect(new Set(column('merchant_transactions:count_24h')).size).toBeGreaterThan(3);
    expect(new Set(column('on_demand:seconds_since_last_txn')).size).toBeGreaterThan(3);
    expect(replayed.stats.replay).toEqual([
      { source: 'transactions', accepted: 90, duplicates: 0, rejected: { late: 0, malformed: 0, invalid: 0 } },
    ]);
  });

  it('the CLI builds both from files: the same rows, as JSON or NDJSON', async () => {
    const { eventLog } = scenario;
    const dir = await mkdtemp(join(tmpdir(), 'tributary-training-set-'));
    try {
      const dump = (topic: string) =>
        eventLog
          .records(topic)
          .map((r) => `${r.value!.toString()}\n`)
          .join('');
      await writeFile(join(dir, 'predictions.ndjson'), dump('predictions'));
      // The events file in the order they were published (one file is one partition: its order is the arrival order).
      await writeFile(join(dir, 'transactions.ndjson'), scenario.transactions.map((t) => `${JSON.stringify(t)}\n`).join(''));
      const labels = scenario.scored.map((s, i) =>
        JSON.stringify({ request_id: s.body.request_id, label: i % 3 === 0 ? 1 : 0, ts: s.at + HOUR }),
      );
      await writeFile(join(dir, 'labels.ndjson'), `${labels.join('\n')}\n`);
      const common = [
        '--model',
        'fraud_detector/1',
        '--labels',
        'labels.ndjson',
        '--cutoff',
        'now',
        '--unlabelled',
        'negative',
        '--maturity',
        '0',
      ];
      const fromLog = await runTrainerCli(
        'training-set-cli.ts',
        ['log', ...common, '--predictions', 'predictions.ndjson', '--out', 'log.json'],
        {
          cwd: dir,
        },
      );
      expect(fromLog.stderr).toMatch(/^training-set: 30 rows from the prediction log \(24 train, 6 validation from /);
      expect(fromLog.code).toBe(0);
      const fromBackfill = await runTrainerCli(
        'training-set-cli.ts',
        ['backfill', ...common, '--events', 'transactions.ndjson', '--format', 'ndjson', '--validation-fraction', '0.2'],
        { cwd: dir },
      );
      expect(fromBackfill.code).toBe(0);
      const log = JSON.parse(await readFile(join(dir, 'log.json'), 'utf8')) as TrainingSet;
      const replayed = fromBackfill.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { set: string; request_id: string; label: number; features: Record<string, number> });
      // The backfill rows are every transaction (unscored ones taken as negatives), the scored among them equal the log's.
      expect(replayed).toHaveLength(90);
      const byId = new Map(replayed.map((r) => [r.request_id, r]));
      log.request_ids.forEach((id, i) => {
        const row = byId.get(id)!;
        expect(row.label).toBe(log.labels[i]);
        expect(log.features.map((f) => row.features[f])).toEqual(log.rows[i]);
      });
      // Usage errors exit 2 and say what is missing.
      const noCutoff = await runTrainerCli('training-set-cli.ts', ['log', '--model', 'fraud_detector/1'], { cwd: dir });
      expect(noCutoff).toMatchObject({ code: 2, stderr: expect.stringMatching(/--cutoff TIME is required/) });
      const noMaturity = await runTrainerCli(
        'training-set-cli.ts',
        ['log', '--model', 'fraud_detector/1', '--cutoff', 'now', '--unlabelled', 'negative', '--labels', 'labels.ndjson'],
        { cwd: dir },
      );
      expect(noMaturity).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs --maturity/) });
      // A file of something else is the wrong input, not an empty one: exit 1, naming a line.
      const wrong = await runTrainerCli('training-set-cli.ts', ['log', ...common, '--predictions', 'labels.ndjson'], { cwd: dir });
      expect(wrong).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/none of the 30 prediction-log records could be read \(the first, labels\.ndjson:1: /),
      });
      // Records read, none selected (a typo in --variant): exit 1, naming what was skipped.
      const typo = await runTrainerCli(
        'training-set-cli.ts',
        ['log', ...common, '--predictions', 'predictions.ndjson', '--variant', 'champoin', '--out', 'typo.json'],
        { cwd: dir },
      );
      expect(typo).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(
          /none of the \d+ prediction-log records is of fraud_detector served as champoin \(0 of other models, 0 of other versions, \d+ of other variants; 0 of versions that encode its features otherwise or are not in the registry\)/,
        ),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
