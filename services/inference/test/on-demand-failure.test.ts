import { describe, expect, it } from 'vitest';
import { createLogger, fraud, MemoryOnlineStore, planModelFeatures, type PredictionLogRecord, Type } from '@tributary/shared';
import { createFastify } from '../src/app.js';
import { createPredictor } from '../src/predictor.js';
import { predictRoute } from '../src/routes/predict.js';
import { validRequest } from './build.js';
import { typedVersion } from './models.js';

describe('an on-demand function that throws on what a request sent', () => {
  it('answers 200 with the feature at its default, listed as defaulted and counted, for a single request and a batch row', async () => {
    const example = fraud.fraudExample().catalog;
    const catalog = {
      ...example,
      requestFields: undefined,
      onDemand: [
        ...example.onDemand,
        {
          name: 'amount_digits',
          inputs: ['request:amount'],
          default: -1,
          // Throws when the amount is not a number (the value read is then null).
          compute: (inputs: Record<string, unknown>) => (inputs['request:amount'] as number).toFixed(0).length,
        },
      ],
    };
    const manifest = typedVersion('2', ['request:amount', 'on_demand:amount_digits']).manifest;
    const served = {
      model: {
        manifest,
        score: async (_: Float32Array, rows: number) => new Float32Array(rows).fill(0.5),
        queued: 0,
        inlineMaxRows: 0,
        workerThreads: 1,
        close: async () => {},
      },
      plan: planModelFeatures(manifest, catalog),
      users: 0,
      retired: false,
    };
    const routed = {
      champion: served,
      policy: { kind: 'champion' as const },
      versions: new Map([['2', served]]),
      shadows: [],
      rewards: {},
    };
    const logged: PredictionLogRecord[] = [];
    const failures: { feature: string; reason: string }[] = [];
    const predictor = createPredictor({
      serving: { acquire: () => routed, release: () => undefined },
      store: new MemoryOnlineStore(),
      log: { append: (record: PredictionLogRecord) => logged.push(record) } as never,
      stats: {
        predicted() {},
        shadowFailed() {},
        defaulted() {},
        onDemandFailed: (failed) => void failures.push(...failed),
        storeFailed() {},
        queueFull() {},
        nonFiniteScores() {},
      },
      featureFetchTimeoutMs: 250,
    });
    const app = createFastify({ logger: createLogger('test', 'silent'), bodyLimit: 1 << 20 });
    await app.register(predictRoute, {
      predictor,
      entities: ['user_id', 'merchant_id'],
      requestFields: Type.Record(Type.String(), Type.Unknown()),
      maxBatchRows: 8,
    });
    try {
      const send = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
      const fine = await send('/v1/predict', { ...validRequest, features: { amount: 125 } });
      expect(fine.statusCode).toBe(200);
      expect(logged[0]!.features).toEqual({ 'request:amount': 125, 'on_demand:amount_digits': 3 });
      expect(failures).toEqual([]);

      const text = await send('/v1/predict?explain=true', { ...validRequest, features: { amount: 'lots' } });
      expect(text.statusCode).toBe(200);
      expect(text.json().defaulted).toEqual(['request:amount', 'on_demand:amount_digits']);
      expect(text.json().explanation[1]).toEqual({ name: 'on_demand:amount_digits', value: -1, source: 'default', age_ms: null });
      expect(logged[1]!.features).toEqual({ 'request:amount': 0, 'on_demand:amount_digits': -1 });
      expect(failures).toEqual([{ feature: 'amount_digits', reason: expect.stringContaining('toFixed') }]);

      const batch = await send('/v1/predict/batch', {
        rows: [
          { ...validRequest, features: { amount: 7 } },
          { ...validRequest, features: { amount: [1] } },
        ],
      });
      expect(batch.statusCode).toBe(200);
      expect(batch.json().predictions.map((p: { defaulted: string[] }) => p.defaulted)).toEqual([
        [],
        ['request:amount', 'on_demand:amount_digits'],
      ]);
      expect(failures).toHaveLength(2);
    } finally {
      await app.close();
    }
  });
});
