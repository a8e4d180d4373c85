import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  fraud,
  MemoryOnlineStore,
  planModelFeatures,
  type FeatureTypeSpec,
  type PredictionLogRecord,
  Type,
} from '@tributary/shared';
import { createFastify } from '../src/app.js';
import type { ModelManifest } from '../src/model.js';
import { createPredictor } from '../src/predictor.js';
import { predictRoute } from '../src/routes/predict.js';
import { buildTestApp, routeFromElsewhere, validRequest } from './build.js';
import { tempRegistry, typedVersion, type BuiltVersion } from './models.js';

const ADMIN = 'ops-admin-secret-0001';
type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  await current?.app.close();
  current = null;
});

async function boot(registryDir = tempRegistry()) {
  current = await buildTestApp({ env: { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}` } });
  return { ...current, registryDir };
}

const admin = (app: App['app'], method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({ method, url, payload, headers: { authorization: `Bearer ${ADMIN}` } });
const register = (app: App['app'], built: BuiltVersion) =>
  admin(app, 'POST', `/admin/models/${built.manifest.name}/versions`, {
    manifest: built.manifest,
    model_base64: built.bytes.toString('base64'),
  });

async function explained(app: App['app'], features: Record<string, unknown> = validRequest.features) {
  const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: { ...validRequest, features } });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as {
    score: number;
    model: { version: string };
    defaulted: string[];
    explanation: { name: string; value: number; source: string }[];
  };
}

const FEATURES = ['request:amount', 'request:channel', 'user_transactions:count_24h', 'on_demand:country_changed'];
const TYPES: Record<string, FeatureTypeSpec> = {
  'request:amount': { type: 'number' },
  'request:channel': { type: 'category', vocabulary: ['web', 'app'] },
  'user_transactions:count_24h': { type: 'integer' },
  'on_demand:country_changed': { type: 'boolean' },
};

// Each test boots the service (model workers and all), some twice: slow on a loaded machine.
describe('feature types in the manifest', { timeout: 30_000 }, () => {
  it('serve a category as its index, and a value outside the vocabulary as the default, counted', async () => {
    const { app, registry } = await boot();
    const typed = typedVersion('2', FEATURES, { feature_types: TYPES, defaults: { 'request:channel': 'app' } });
    expect((await register(app, typed)).statusCode).toBe(201);
    expect((await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'typed' })).statusCode).toBe(200);
    const web = await explained(app, { ...validRequest.features, channel: 'web' });
    expect(web.model.version).toBe('2');
    expect(web.explanation.map((e) => [e.name, e.value, e.source])).toEqual([
      ['request:amount', 125.5, 'request'],
      ['request:channel', 0, 'request'],
      ['user_transactions:count_24h', 0, 'default'], // no event of the card holder yet
      ['on_demand:country_changed', 0, 'default'],
    ]);
    expect(web.score).toBeCloseTo(typed.expected(web.explanation.map((e) => e.value)), 6);
    const pos = await explained(app, { ...validRequest.features, channel: 'pos' });
    expect(pos.explanation[1]).toEqual({ name: 'request:channel', value: 1, source: 'default', age_ms: null });
    expect(pos.defaulted).toContain('request:channel');
    expect(await registry.metrics()).toMatch(/tributary_feature_defaults_total\{feature="request:channel"\} 1/);
  });

  it('refuse a version whose types the service cannot produce, or whose defaults do not fit, and keep the old one serving', async () => {
    const { app } = await boot();
    const cases: [string, Partial<ModelManifest>, number, string][] = [
      [
        'a count declared boolean',
        { feature_types: { ...TYPES, 'user_transactions:count_24h': { type: 'boolean' } } },
        422,
        'feature "user_transactions:count_24h" is declared boolean, but the store holds the count of events, an integer',
      ],
      [
        'a string request field declared a number',
        { features: [...FEATURES.slice(0, 3), 'request:country'], feature_types: { 'request:country': { type: 'number' } } },
        422,
        'feature "request:country" is declared number, but request field "country" is a string',
      ],
      [
        'an on-demand number declared boolean',
        { features: [...FEATURES.slice(0, 3), 'on_demand:log_amount'], feature_types: { 'on_demand:log_amount': { type: 'boolean' } } },
        422,
        'feature "on_demand:log_amount" is declared boolean, but on-demand feature "log_amount" computes a number',
      ],
      [
        'a category without its vocabulary',
        { feature_types: { 'request:channel': { type: 'category' } } },
        422,
        'feature "request:channel": a category needs its vocabulary',
      ],
      [
        'an integer default with a fraction',
        { feature_types: TYPES, defaults: { 'user_transactions:count_24h': 1.5 } },
        422,
        'feature "user_transactions:count_24h": its default 1.5 does not fit its type integer (expected an integer)',
      ],
      [
        'a category default outside the vocabulary',
        { feature_types: TYPES, defaults: { 'request:channel': 'pos' } },
        422,
        'feature "request:channel": its default "pos" does not fit its type category (expected one of its vocabulary)',
      ],
      [
        'a type for a feature the model does not list',
        { feature_types: { 'user_transactions:count_1h': { type: 'integer' } } },
        422,
        'feature_types names "user_transactions:count_1h", which is not in the model\'s features',
      ],
      [
        'a typed request field the request schema does not have: "constructor"',
        { features: [...FEATURES.slice(0, 3), 'request:constructor'], feature_types: { 'request:constructor': { type: 'number' } } },
        422,
        'feature "request:constructor": the request schema has no field "constructor" (its fields: amount, country, channel)',
      ],
      [
        'an untyped request field the request schema does not have',
        { features: [...FEATURES.slice(0, 3), 'request:amout'], feature_types: {} },
        422,
        'feature "request:amout": the request schema has no field "amout" (its fields: amount, country, channel)',
      ],
      [
        'a request field "__proto__" read by no type',
        { features: [...FEATURES.slice(0, 3), 'request:__proto__'], feature_types: {} },
        422,
        'feature "request:__proto__": the request schema has no field "__proto__"',
      ],
      [
        'a type that does not exist',
        { feature_types: { 'request:amount': { type: 'float' } as never } },
        400,
        'manifest: feature_types.request:amount.type must be one of number, integer, boolean, category (got "float")',
      ],
    ];
    for (const [what, extra, status, message] of cases) {
      const built = typedVersion('3', FEATURES, extra);
      const response = await register(app, built);
      expect(response.statusCode, what).toBe(status);
      expect(response.json().code, what).toBe(status === 422 ? 'MODEL_REJECTED' : 'VALIDATION_FAILED');
      expect(response.json().message, what).toContain(message);
    }
    expect((await admin(app, 'GET', '/admin/models/fraud_detector')).json().versions.map((v: { version: string }) => v.version)).toEqual([
      '1',
    ]);
    expect((await explained(app)).model.version).toBe('1');
  });

  it('keep the old version serving when a routed version with a mismatched type reaches a replica', async () => {
    const { app, registryDir, registry } = await boot();
    // Written into the registry directory by hand (not through register, which would refuse it).
    const bad = typedVersion('2', FEATURES, { feature_types: { ...TYPES, 'request:channel': { type: 'integer' } } });
    const dir = join(registryDir, 'fraud_detector', '2');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.onnx'), bad.bytes);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(bad.manifest));
    await routeFromElsewhere(app, '2');
    expect((await explained(app)).model.version).toBe('1');
    expect(await registry.metrics()).toMatch(/tributary_model_reloads_total\{outcome="rejected"\} 1/);
    // Promoting it through the API checks the types and refuses it with the reason.
    expect((await admin(app, 'POST', '/admin/models/fraud_detector/rollback', { reason: 'back to 1' })).statusCode).toBe(200);
    const promote = await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'retry' });
    expect(promote.statusCode).toBe(422);
    expect(promote.json().message).toBe('feature "request:channel" is declared integer, but request field "channel" is a string');
  });

  it('are optional: a registry whose manifest has none still loads, every feature a number, serving the same vector', async () => {
    const typedApp = await boot();
    const withTypes = await explained(typedApp.app);
    await typedApp.app.close();
    const registryDir = tempRegistry();
    const file = join(registryDir, 'fraud_detector', '1', 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(manifest.feature_types).toBeDefined();
    delete manifest.feature_types;
    writeFileSync(file, JSON.stringify(manifest));
    const { app } = await boot(registryDir);
    const without = await explained(app);
    expect(without.model.version).toBe('1');
    expect(without.explanation).toEqual(withTypes.explanation);
    expect(without.score).toBe(withTypes.score);
  });

  it('answer a request field of another type with 400 naming the field', async () => {
    const { app } = await boot();
    // The example's request schema says the types: refused before the model is asked.
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      payload: { ...validRequest, features: { ...validRequest.features, amount: '12' } },
    });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json()).toEqual({ code: 'VALIDATION_FAILED', message: 'features.amount must be number', field: 'features.amount' });
  });
});

describe('feature types under a request schema that does not say them', () => {
  it('check each request field against the serving model, 400 naming the field (and the row of a batch)', async () => {
    const catalog = { ...fraud.fraudExample().catalog, requestFields: undefined };
    const manifest = typedVersion('2', ['request:amount', 'request:channel'], {
      feature_types: { 'request:amount': { type: 'integer' }, 'request:channel': { type: 'category', vocabulary: ['web', 'app'] } },
    }).manifest;
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
    const predictor = createPredictor({
      serving: { acquire: () => routed, release: () => undefined },
      store: new MemoryOnlineStore(),
      log: { append: (record: PredictionLogRecord) => logged.push(record) } as never,
      stats: {
        predicted() {},
        shadowFailed() {},
        defaulted() {},
        onDemandFailed() {},
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
      const fine = await send('/v1/predict', { ...validRequest, features: { amount: 12, channel: 'app' } });
      expect(fine.statusCode).toBe(200);
      expect(logged[0]!.features).toEqual({ 'request:amount': 12, 'request:channel': 1 });
      const fraction = await send('/v1/predict', { ...validRequest, features: { amount: 12.5, channel: 'app' } });
      expect(fraction.statusCode).toBe(400);
      expect(fraction.json()).toEqual({
        code: 'VALIDATION_FAILED',
        message: 'features.amount must be an integer (model fraud_detector version 2 declares request:amount integer)',
        field: 'features.amount',
      });
      const batch = await send('/v1/predict/batch', {
        rows: [
          { ...validRequest, features: { amount: 1, channel: 'web' } },
          { ...validRequest, features: { amount: 1, channel: true } },
        ],
      });
      expect(batch.statusCode).toBe(400);
      expect(batch.json()).toEqual({
        code: 'VALIDATION_FAILED',
        message: 'rows.1.features.channel must be a string (a category) (model fraud_detector version 2 declares request:channel category)',
        field: 'rows.1.features.channel',
      });
      expect(logged).toHaveLength(1);
    } finally {
      await app.close();
    }
  });
});
