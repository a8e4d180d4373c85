/**
 * Both ways to build a training set give the same rows: requests served by the real
 * inference app (features written by the real pipeline into the in-memory store) are logged;
 * the training set from that prediction log must equal, row for row and bit for bit, the
 * one the backfill builds from the transactions topic, because both vectors are assembled
 * by the same serving code from the same state at the same instant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraud, type FeatureCatalog } from '@tributary/shared';
import { readModelVersion } from '@tributary/inference';
import { trainingSetFromBackfill, trainingSetFromPredictionLog, type ModelFeatures } from '../src/build-training-set.js';
import { readTopic } from '../src/log-input.js';
import type { LabelPolicy } from '../src/training-set.js';
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
    const labels = await readTopic(eventLog, 'labels');
    const policy: LabelPolicy = { cutoff, unlabelled: 'drop', maturityMs: 0 };
    const split = { validationFraction: 0.25 };

    const fromLog = trainingSetFromPredictionLog({
      predictions: await readTopic(eventLog, 'predictions'),
      labels,
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
      labels,
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
    expect(replayed.stats.replay).toEqual([{ source: 'transactions', accepted: 90, rejected: { late: 0, malformed: 0, invalid: 0 } }]);
  });
});
