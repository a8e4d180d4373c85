/**
 * A batch a rollout splits between versions is answered whole or not at all: when the scoring
 * of one version fails, the rows another version scored are neither logged nor counted as
 * predictions (the client's retry would log them again, under new prediction ids).
 */
import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  emptyState,
  fraud,
  MemoryOnlineStore,
  stateFields,
  TributaryError,
  type OnlineStore,
  type PredictionLogRecord,
} from '@tributary/shared';
import { createPredictor } from '../src/predictor.js';
import type { RoutedModels, ServedModel } from '../src/registry/serving.js';
import { validRequest } from './build.js';
import { fakeServed, FOREIGN_FEATURES, logisticVersion, typedVersion, type BuiltVersion } from './models.js';

type Scoring = 'scores' | 'queue full' | 'NaN';

function version(built: BuiltVersion, scoring: Scoring, scored: string[]): ServedModel {
  const { manifest } = built;
  return fakeServed(manifest, async (rows) => {
    scored.push(manifest.version);
    if (scoring === 'queue full') throw new TributaryError('OVERLOADED', 'the model queue is full; retry shortly');
    return new Float32Array(rows).fill(scoring === 'NaN' ? NaN : 0.5);
  });
}

/** A canary at 50% over a champion; what was logged, counted and scored. */
function canary(
  champion: { built: BuiltVersion; scoring: Scoring },
  canary: { built: BuiltVersion; scoring: Scoring },
  store: OnlineStore = new MemoryOnlineStore(),
) {
  const scored: string[] = [];
  const served = [version(champion.built, champion.scoring, scored), version(canary.built, canary.scoring, scored)];
  const routed: RoutedModels = {
    champion: served[0]!,
    policy: { kind: 'canary', version: canary.built.manifest.version, percent: 50 },
    versions: new Map(served.map((v) => [v.model.manifest.version, v])),
    shadows: [],
    rewards: {},
  };
  const logged: PredictionLogRecord[] = [];
  const counted = { predicted: 0, nonFinite: 0, storeFailed: 0 };
  const predictor = createPredictor({
    serving: { acquire: () => routed, release: () => {} },
    store,
    log: { append: (record: PredictionLogRecord) => void logged.push(record) } as never,
    stats: {
      predicted: (_model, _variant, rows) => void (counted.predicted += rows),
      shadowFailed() {},
      defaulted() {},
      onDemandFailed() {},
      storeFailed: () => void counted.storeFailed++,
      queueFull() {},
      nonFiniteScores: (_model, rows) => void (counted.nonFinite += rows),
    },
    featureFetchTimeoutMs: 250,
  });
  return { predictor, logged, counted, scored };
}

const rows = (request: typeof validRequest | (Omit<typeof validRequest, 'entities'> & { entities: Record<string, string> })) =>
  Array.from({ length: 40 }, (_, i) => ({ ...request, request_id: `r-${i}` }));

/** Lets every scoring still running finish (the store and the models here answer within the turn). */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('a batch split by a rollout', () => {
  it('reads the store once for all its versions, and counts a failed read once', async () => {
    let reads = 0;
    const down: OnlineStore = Object.assign(new MemoryOnlineStore(), {
      read: async () => {
        reads++;
        throw new Error('connection refused');
      },
    });
    const { predictor, counted } = canary(
      { built: logisticVersion('1', 0.1, 0), scoring: 'scores' },
      { built: logisticVersion('2', 0.1, 0), scoring: 'scores' },
      down,
    );
    const answers = await predictor.predictBatch(rows(validRequest), false);
    expect(new Set(answers.map((a) => a.model.version))).toEqual(new Set(['1', '2']));
    expect(answers.every((a) => a.degraded)).toBe(true);
    expect([reads, counted.storeFailed]).toEqual([1, 1]);
  });

  it('gives each version the states of its own rows from that one read', async () => {
    let reads = 0;
    const store = new MemoryOnlineStore();
    const read = store.read.bind(store);
    store.read = (keys) => {
      reads++;
      return read(keys);
    };
    const { predictor } = canary(
      { built: logisticVersion('1', 0.1, 0), scoring: 'scores' },
      { built: typedVersion('2', ['merchant_transactions:count_1h', 'request:amount']), scoring: 'scores' },
      store,
    );
    // The card holder made 2 transactions, the merchant 3 (all of another holder but one), a minute ago.
    const now = Date.now();
    const write = (entity: 'user_id' | 'merchant_id', id: string, count: number) => {
      const group = fraud.fraudExample().groups.find((g) => g.entity === entity && g.definition.source === 'transactions')!;
      const state = emptyState();
      for (let i = 0; i < count; i++) {
        applyEvent(group, state, { time: now - 60_000, values: { amount: 10, merchant_id: 'm_1', country: 'US', channel: 'web' } });
      }
      return { key: { group: group.id, entity, id }, partition: 0, offset: '1', set: stateFields(0, state), remove: [], ttlMs: 60_000 };
    };
    await store.write([write('user_id', validRequest.entities.user_id, 2), write('merchant_id', validRequest.entities.merchant_id, 3)]);
    reads = 0;
    const answers = await predictor.predictBatch(rows(validRequest), true);
    expect(new Set(answers.map((a) => a.model.version))).toEqual(new Set(['1', '2']));
    expect(answers.some((a) => a.degraded)).toBe(false);
    expect(reads).toBe(1);
    const value = (answer: (typeof answers)[number], name: string) => answer.explanation!.find((e) => e.name === name)?.value;
    for (const answer of answers) {
      expect(value(answer, 'merchant_transactions:count_1h'), answer.model.version).toBe(3);
      if (answer.model.version === '1') expect(value(answer, 'user_transactions:count_1h')).toBe(2);
    }
  });

  it('logs and counts every row once, with its version, when every version scored', async () => {
    const { predictor, logged, counted } = canary(
      { built: logisticVersion('1', 0.1, 0), scoring: 'scores' },
      { built: logisticVersion('2', 0.1, 0), scoring: 'scores' },
    );
    const answers = await predictor.predictBatch(rows(validRequest), false);
    expect(new Set(answers.map((a) => a.model.version))).toEqual(new Set(['1', '2']));
    const byRequest = (a: string[], b: string[]) => a[0]!.localeCompare(b[0]!);
    expect(logged.map((r) => [r.request_id, r.prediction_id, r.model.version]).sort(byRequest)).toEqual(
      answers.map((a) => [a.request_id, a.prediction_id, a.model.version]).sort(byRequest),
    );
    expect(logged).toHaveLength(40);
    expect(counted.predicted).toBe(40);
  });

  it("logs and counts nothing when another version's queue is full", async () => {
    const { predictor, logged, counted, scored } = canary(
      { built: logisticVersion('1', 0.1, 0), scoring: 'scores' },
      { built: logisticVersion('2', 0.1, 0), scoring: 'queue full' },
    );
    await expect(predictor.predictBatch(rows(validRequest), false)).rejects.toMatchObject({ code: 'OVERLOADED' });
    await settled();
    expect(scored.sort()).toEqual(['1', '2']);
    expect(logged).toEqual([]);
    expect(counted.predicted).toBe(0);
  });

  it('logs and counts nothing when another version scores NaN: 422 naming the version and row', async () => {
    const { predictor, logged, counted } = canary(
      { built: logisticVersion('1', 0.1, 0), scoring: 'scores' },
      { built: logisticVersion('2', 0.1, 0), scoring: 'NaN' },
    );
    const failed = predictor.predictBatch(rows(validRequest), false);
    await expect(failed).rejects.toMatchObject({ code: 'MODEL_OUTPUT_INVALID', httpStatus: 422, retriable: false });
    await expect(failed).rejects.toThrow(/^model fraud_detector version 2 gave a non-finite score \(NaN\) for rows\.\d+;/);
    await settled();
    expect(logged).toEqual([]);
    expect(counted.predicted).toBe(0);
    // The canary's rows, all NaN: still counted as such.
    expect(counted.nonFinite).toBeGreaterThan(0);
    expect(counted.nonFinite).toBeLessThan(40);
  });

  it('refuses a row without an entity its version needs before any version scores', async () => {
    // The champion needs only the user; the canary needs the merchant too.
    const { predictor, logged, counted, scored } = canary(
      { built: typedVersion('1', FOREIGN_FEATURES), scoring: 'scores' },
      { built: logisticVersion('2', 0.1, 0), scoring: 'scores' },
    );
    const failed = predictor.predictBatch(rows({ ...validRequest, entities: { user_id: 'u_1' } }), false);
    await expect(failed).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: expect.stringMatching(/^rows\.\d+\.entities\.merchant_id$/),
    });
    await settled();
    expect(scored).toEqual([]);
    expect(logged).toEqual([]);
    expect(counted.predicted).toBe(0);
  });
});
