/**
 * A batch a rollout splits between versions is answered whole or not at all: when the scoring
 * of one version fails, the rows another version scored are neither logged nor counted as
 * predictions (the client's retry would log them again, under new prediction ids).
 */
import { describe, expect, it } from 'vitest';
import { MemoryOnlineStore, TributaryError, type PredictionLogRecord } from '@tributary/shared';
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
function canary(champion: { built: BuiltVersion; scoring: Scoring }, canary: { built: BuiltVersion; scoring: Scoring }) {
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
  const counted = { predicted: 0, nonFinite: 0 };
  const predictor = createPredictor({
    serving: { acquire: () => routed, release: () => {} },
    store: new MemoryOnlineStore(),
    log: { append: (record: PredictionLogRecord) => void logged.push(record) } as never,
    stats: {
      predicted: (_model, _variant, rows) => void (counted.predicted += rows),
      shadowFailed() {},
      defaulted() {},
      storeFailed() {},
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
