/**
 * Requests shed because a model queue is full are counted once per request refused: not for a
 * shadow whose queue is full (its client had its answer), nor once per version when a rollout
 * splits a batch between versions whose queues are all full.
 */
import { describe, expect, it } from 'vitest';
import { MemoryOnlineStore, TributaryError, type PredictionLogRecord } from '@tributary/shared';
import { createPredictor } from '../src/predictor.js';
import type { RolloutPolicy } from '../src/registry/rollout.js';
import type { RoutedModels, ServedModel } from '../src/registry/serving.js';
import { validRequest } from './build.js';
import { fakeServed, logisticVersion } from './models.js';

function version(name: string, queueFull: boolean): ServedModel {
  return fakeServed(logisticVersion(name, 0.1, 0).manifest, async (rows) => {
    if (queueFull) throw new TributaryError('OVERLOADED', 'the model queue is full; retry shortly');
    return new Float32Array(rows).fill(0.5);
  });
}

function predictorOver(champion: ServedModel, others: { policy?: RolloutPolicy; versions?: ServedModel[]; shadows?: ServedModel[] }) {
  const routed: RoutedModels = {
    champion,
    policy: others.policy ?? { kind: 'champion' },
    versions: new Map([champion, ...(others.versions ?? []), ...(others.shadows ?? [])].map((v) => [v.model.manifest.version, v])),
    shadows: others.shadows ?? [],
    rewards: {},
  };
  const counted = { shed: 0, shadowFailures: 0 };
  let released = 0;
  const predictor = createPredictor({
    serving: { acquire: () => routed, release: () => void released++ },
    store: new MemoryOnlineStore(),
    log: { append: (_: PredictionLogRecord) => undefined } as never,
    stats: {
      predicted() {},
      shadowFailed: () => void counted.shadowFailures++,
      defaulted() {},
      onDemandFailed() {},
      storeFailed() {},
      queueFull: () => void counted.shed++,
      nonFiniteScores() {},
    },
    featureFetchTimeoutMs: 250,
    random: () => 0.5,
  });
  const shadowsDone = async () => {
    while (released === 0) await new Promise((resolve) => setImmediate(resolve));
  };
  return { predictor, counted, shadowsDone };
}

describe('requests shed for a full model queue', () => {
  it('are counted when the version that answers is full', async () => {
    const { predictor, counted } = predictorOver(version('1', true), {});
    await expect(predictor.predict(validRequest, false)).rejects.toMatchObject({ code: 'OVERLOADED' });
    expect(counted.shed).toBe(1);
  });

  it('are not counted for a shadow whose queue is full: the client had its answer', async () => {
    const { predictor, counted, shadowsDone } = predictorOver(version('1', false), { shadows: [version('2', true)] });
    const answer = await predictor.predict(validRequest, false);
    expect(answer.model.version).toBe('1');
    await shadowsDone();
    expect(counted).toEqual({ shed: 0, shadowFailures: 1 });
  });

  it('are counted once for a batch a rollout splits between versions whose queues are all full', async () => {
    const { predictor, counted } = predictorOver(version('1', true), {
      policy: { kind: 'canary', version: '2', percent: 50 },
      versions: [version('2', true)],
    });
    const rows = Array.from({ length: 40 }, (_, i) => ({ ...validRequest, request_id: `r-${i}` }));
    await expect(predictor.predictBatch(rows, false)).rejects.toMatchObject({ code: 'OVERLOADED' });
    expect(counted.shed).toBe(1);
  });
});
