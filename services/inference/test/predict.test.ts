import { afterEach, describe, expect, it } from 'vitest';
import {
  applyEvent,
  emptyState,
  encodePartitionState,
  fraud,
  MemoryEventLog,
  MemoryOnlineStore,
  type EntityKey,
  type OnlineStore,
  type PredictionLogRecord,
} from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { buildTestApp, validRequest } from './build.js';

type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  await current?.app.close();
  current = null;
});
async function boot(options?: Parameters<typeof buildTestApp>[0]): Promise<App> {
  current = await buildTestApp(options);
  return current;
}

describe('POST /v1/predict', () => {
  it('scores a request with the ONNX model and logs the prediction to the predictions topic', async () => {
    const { app, eventLog } = await boot();
    const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.prediction_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.score).toBeGreaterThanOrEqual(0);
    expect(body.score).toBeLessThanOrEqual(1);
    expect(body.model).toEqual({ name: 'fraud_detector', version: '1' });
    expect(body.degraded).toBe(false);
    await app.predictionLog.flush();
    const records = (eventLog as MemoryEventLog).records('predictions');
    expect(records).toHaveLength(1);
    const record = JSON.parse(records[0]!.value!.toString()) as PredictionLogRecord;
    expect(record).toMatchObject({ prediction_id: body.prediction_id, request_id: 't-1', score: body.score, variant: 'champion' });
    // The score as the 9-digit decimal that identifies the model's float32 output, in the answer and the log alike.
    expect(String(body.score).replace(/^0\.0*/, '').length).toBeLessThanOrEqual(9);
    expect(Object.keys(record.features)).toHaveLength(15);
    expect(record.features['request:amount']).toBeCloseTo(125.5);
    expect(records[0]!.key).toBe('t-1');
  });

  it('explains each feature with the value the model received and the prediction log holds (a float32)', async () => {
    const { app, eventLog } = await boot();
    const payload = { ...validRequest, features: { ...validRequest.features, amount: 0.1 } };
    const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload });
    await app.predictionLog.flush();
    const record = JSON.parse((eventLog as MemoryEventLog).records('predictions')[0]!.value!.toString()) as PredictionLogRecord;
    const explained = response.json().explanation as { name: string; value: number }[];
    expect(explained.find((e) => e.name === 'request:amount')!.value).toBe(0.100000001);
    for (const { name, value } of explained) expect(value, name).toBe(record.features[name]);
  });

  it('refuses a request id with a lone surrogate (the monitor joins labels to it in Redis, where two such ids would be one)', async () => {
    const { app } = await boot();
    // The body as a client would send it: JSON escapes, one of them a lone surrogate.
    const predictWith = (idJson: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ ...validRequest, request_id: 'REQ' }).replace('"REQ"', idJson),
      });
    const lone = await predictWith('"r\\ud800"');
    expect(lone.statusCode).toBe(400);
    expect(lone.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'request_id',
      message: expect.stringContaining('well-formed Unicode'),
    });
    const pair = await predictWith('"r\\ud83d\\ude00"');
    expect(pair.statusCode).toBe(200);
  });

  it('takes a request id of up to 256 characters, the longest the monitor takes in a prediction-log record', async () => {
    const { app, eventLog } = await boot();
    const longest = await app.inject({ method: 'POST', url: '/v1/predict', payload: { ...validRequest, request_id: 'r'.repeat(256) } });
    expect(longest.statusCode).toBe(200);
    const longer = await app.inject({ method: 'POST', url: '/v1/predict', payload: { ...validRequest, request_id: 'r'.repeat(257) } });
    expect(longer.statusCode).toBe(400);
    expect(longer.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'request_id' });
    await app.predictionLog.flush();
    const records = (eventLog as MemoryEventLog).records('predictions');
    expect(records.map((r) => (JSON.parse(r.value!.toString()) as PredictionLogRecord).request_id.length)).toEqual([256]);
  });

  it('uses the entity features written by the pipeline, and explains where each value came from', async () => {
    const { app } = await boot();
    const push = await app.inject({
      method: 'POST',
      url: '/v1/events/transactions',
      payload: {
        event_id: 'e1',
        user_id: 'u_1',
        merchant_id: 'm_1',
        amount: 10,
        currency: 'USD',
        country: 'US',
        channel: 'pos',
        ts: Date.now(),
      },
    });
    expect(push.statusCode).toBe(202);
    const explained = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: validRequest });
    expect(explained.statusCode).toBe(200);
    const explanation = explained.json().explanation as { name: string; value: number; source: string }[];
    expect(explanation.map((e) => e.name)).toEqual(
      (
        JSON.parse(
          (await import('node:fs')).readFileSync(new URL('../../../models/fraud_detector/1/manifest.json', import.meta.url), 'utf8'),
        ) as { features: string[] }
      ).features,
    );
    // No pipeline runs in this test: stored features are defaulted, request features are not.
    expect(explanation.find((e) => e.name === 'request:amount')).toMatchObject({ value: 125.5, source: 'request' });
    expect(explanation.find((e) => e.name === 'on_demand:channel_web')).toMatchObject({ value: 1, source: 'on_demand' });
    expect(explanation.find((e) => e.name === 'user_transactions:count_1h')).toMatchObject({ source: 'default' });
  });

  it('degrades instead of failing when the online store is down', async () => {
    const broken: OnlineStore = Object.assign(new MemoryOnlineStore(), {
      read: async (_keys: EntityKey[]) => {
        throw new Error('connection refused');
      },
    });
    const { app, registry } = await boot({ store: broken });
    const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(response.statusCode).toBe(200);
    expect(response.json().degraded).toBe(true);
    expect(response.json().defaulted).toContain('user_transactions:count_1h');
    expect(await registry.getSingleMetricAsString('tributary_online_store_errors_total')).toMatch(/tributary_online_store_errors_total 1/);
  });

  it("degrades instead of failing when one group's stored state cannot be decoded, on the prediction and the features routes", async () => {
    // The user's state is in no known format (a damaged or foreign value); the merchant's is absent.
    const store = new MemoryOnlineStore();
    store.read = async (keys: EntityKey[]) => keys.map((key) => (key.entity === 'user_id' ? { s0: Buffer.from([99, 1, 2]) } : null));
    const { app, registry } = await boot({ store });
    const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: validRequest });
    expect(response.statusCode).toBe(200);
    expect(response.json().degraded).toBe(true);
    expect(response.json().defaulted).toContain('user_transactions:count_1h');
    expect(await registry.getSingleMetricAsString('tributary_online_store_errors_total')).toMatch(/tributary_online_store_errors_total 1/);
    const batch = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [validRequest, validRequest] } });
    expect(batch.statusCode).toBe(200);
    expect(batch.json().predictions.map((p: { degraded: boolean }) => p.degraded)).toEqual([true, true]);

    const features = await app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' });
    expect(features.statusCode).toBe(200);
    const [group] = features.json().groups;
    expect(group).toMatchObject({ group: 'user_transactions', newest_event_time: null, freshness_ms: null });
    expect(group.error).toMatch(/^stored state unreadable: .*unknown format 99/);
    expect(group.values.count_1h).toBeNull();
    const merchant = await app.inject({ method: 'GET', url: '/v1/features/merchant_id/m_1' });
    expect(merchant.statusCode).toBe(200);
    expect(merchant.json().groups[0].error).toBeUndefined();
  });

  it('degrades only the rows of a batch whose stored state cannot be decoded, in the answers, the log and the counts', async () => {
    const store = new MemoryOnlineStore();
    store.read = async (keys: EntityKey[]) => keys.map((key) => (key.id === 'u_bad' ? { s0: Buffer.from([99, 1, 2]) } : null));
    const { app, registry, eventLog } = await boot({ store });
    const row = (user: string, id: string) => ({ ...validRequest, request_id: id, entities: { ...validRequest.entities, user_id: user } });
    const batch = await app.inject({
      method: 'POST',
      url: '/v1/predict/batch',
      payload: { rows: [row('u_bad', 'b1'), row('u_good', 'b2')] },
    });
    expect(batch.statusCode).toBe(200);
    expect(batch.json().predictions.map((p: { degraded: boolean }) => p.degraded)).toEqual([true, false]);
    const text = await registry.getSingleMetricAsString('tributary_predictions_total');
    expect(text).toMatch(/degraded="true"\} 1$/m);
    expect(text).toMatch(/degraded="false"\} 1$/m);
    await waitFor(() => (eventLog as MemoryEventLog).records('predictions').length === 2, { what: 'the two log records' });
    const logged = (eventLog as MemoryEventLog).records('predictions').map((r) => JSON.parse(String(r.value)) as PredictionLogRecord);
    expect(Object.fromEntries(logged.map((r) => [r.request_id, r.degraded]))).toEqual({ b1: true, b2: false });
  });

  it('degrades instead of failing when a stored state holds a newest event time that is no event time', async () => {
    const user = fraud.fraudExample().groups.find((g) => g.definition.name === 'user_transactions')!;
    const now = Date.now();
    const state = emptyState();
    applyEvent(user, state, { time: now - 1000, values: { merchant_id: 'm_1', amount: 5, country: 'US', ts: now - 1000 } });
    for (const newest of [Infinity, 1e300]) {
      const bytes = Buffer.from(encodePartitionState(state, { eventIds: false }));
      bytes.writeDoubleLE(newest, 1);
      const store = new MemoryOnlineStore();
      store.read = async (keys: EntityKey[]) => keys.map((key) => (key.entity === 'user_id' ? { s0: bytes } : null));
      const { app } = await boot({ store });
      const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: validRequest });
      expect(response.statusCode, `${newest}`).toBe(200);
      expect(response.json().degraded).toBe(true);
      const count = response.json().explanation.find((e: { name: string }) => e.name === 'user_transactions:count_1h');
      expect(count).toMatchObject({ source: 'default' });
      const features = await app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' });
      expect(features.statusCode, `${newest}`).toBe(200);
      expect(features.json().groups[0].error).toMatch(/^stored state unreadable: .*newest event time .* is not an event time/);
      await app.close();
    }
  });

  it('answers while the event log is down, keeping prediction-log records until it is back', async () => {
    const eventLog = new MemoryEventLog();
    let down = true;
    const publish = eventLog.publish.bind(eventLog);
    eventLog.publish = async (topic, records) => {
      if (down) throw new Error('broker unreachable');
      return publish(topic, records);
    };
    const { app } = await boot({ eventLog });
    for (let i = 0; i < 3; i++) {
      const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: { ...validRequest, request_id: `r${i}` } });
      expect(response.statusCode).toBe(200);
    }
    await app.predictionLog.flush();
    expect(app.predictionLog.pending).toBe(3);
    down = false;
    await waitFor(() => eventLog.records('predictions').length === 3, { timeoutMs: 5_000, what: 'buffered records delivered' });
    expect(
      eventLog
        .records('predictions')
        .map((r) => r.key)
        .sort(),
    ).toEqual(['r0', 'r1', 'r2']);
  });

  describe('bad input is answered with a 4xx naming the problem', () => {
    const cases: {
      name: string;
      payload: string;
      contentType?: string;
      url?: string;
      status: number;
      code: string;
      field?: string;
      message?: string;
    }[] = [
      { name: 'malformed JSON', payload: '{"request_id": "x",', status: 400, code: 'BAD_REQUEST' },
      { name: 'empty body', payload: '', status: 400, code: 'BAD_REQUEST' },
      { name: 'a JSON array', payload: '[]', status: 400, code: 'VALIDATION_FAILED' },
      {
        name: 'a wrong type',
        payload: JSON.stringify({ ...validRequest, features: { ...validRequest.features, amount: '125' } }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'features.amount',
      },
      {
        name: 'a negative amount',
        payload: JSON.stringify({ ...validRequest, features: { ...validRequest.features, amount: -1 } }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'features.amount',
      },
      {
        name: 'a huge amount',
        payload: JSON.stringify({ ...validRequest, features: { ...validRequest.features, amount: 1e308 } }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'features.amount',
      },
      {
        name: 'a missing entity',
        payload: JSON.stringify({ ...validRequest, entities: { user_id: 'u_1' } }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'entities.merchant_id',
      },
      {
        name: 'a missing field',
        payload: JSON.stringify({ entities: validRequest.entities, features: validRequest.features }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'request_id',
      },
      {
        name: 'an unknown field',
        payload: JSON.stringify({ ...validRequest, extra: 1 }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'extra',
      },
      {
        name: 'an unknown channel',
        payload: JSON.stringify({ ...validRequest, features: { ...validRequest.features, channel: 'fax' } }),
        status: 400,
        code: 'VALIDATION_FAILED',
        field: 'features.channel',
        message: 'features.channel must be one of "web", "app", "pos"',
      },
      {
        name: 'an unknown explain value',
        payload: JSON.stringify(validRequest),
        url: '/v1/predict?explain=yes',
        status: 400,
        code: 'VALIDATION_FAILED',
        message: 'explain must be one of "true", "false", "1", "0"',
      },
      {
        name: 'a __proto__ key',
        payload:
          '{"request_id":"x","__proto__":{"polluted":true},"entities":{"user_id":"u","merchant_id":"m"},"features":{"amount":1,"country":"US","channel":"web"}}',
        status: 400,
        code: 'BAD_REQUEST',
      },
      {
        name: 'a wrong content type',
        payload: 'request_id=x',
        contentType: 'application/x-www-form-urlencoded',
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
      {
        name: 'plain text',
        payload: JSON.stringify(validRequest),
        contentType: 'text/plain',
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { app } = await boot();
        const response = await app.inject({
          method: 'POST',
          url: c.url ?? '/v1/predict',
          payload: c.payload,
          headers: { 'content-type': c.contentType ?? 'application/json' },
        });
        expect(response.statusCode).toBe(c.status);
        const body = response.json();
        expect(body.code).toBe(c.code);
        expect(body.message).toEqual(c.message ?? expect.any(String));
        if (c.field) expect(body.field).toBe(c.field);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });
    }

    it('an oversized body', async () => {
      const { app } = await boot({ env: { BODY_LIMIT_BYTES: '2048' } });
      const response = await app.inject({
        method: 'POST',
        url: '/v1/predict',
        payload: JSON.stringify({ ...validRequest, request_id: 'x'.repeat(5000) }),
        headers: { 'content-type': 'application/json' },
      });
      expect(response.statusCode).toBe(413);
      expect(response.json().code).toBe('PAYLOAD_TOO_LARGE');
    });
  });
});
