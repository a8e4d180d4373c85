import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, validRequest } from './build.js';

const CLIENT = 'client-secret-000001';
const OTHER = 'client-secret-000002';
type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  await current?.app.close();
  current = null;
});
async function boot(env: Record<string, string>) {
  current = await buildTestApp({ env });
  return current;
}

describe('API keys on the client routes', () => {
  it('are optional: without API_KEYS the prediction and push routes are open', async () => {
    const { app } = await boot({});
    expect((await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).statusCode).toBe(200);
  });

  it('are required once API_KEYS is set, as a bearer token or x-api-key, and counted when refused', async () => {
    const { app, registry } = await boot({ API_KEYS: `web:${CLIENT}` });
    const none = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ code: 'UNAUTHORIZED' });
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      payload: validRequest,
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/v1/events/transactions', payload: {} })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' })).statusCode).toBe(401);
    const bearer = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      payload: validRequest,
      headers: { authorization: `Bearer ${CLIENT}` },
    });
    expect(bearer.statusCode).toBe(200);
    const header = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers: { 'x-api-key': CLIENT } });
    expect(header.statusCode).toBe(200);
    // Operations routes stay open for probes and scrapers.
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/tributary_requests_denied_total\{reason="missing_key"\} 3/);
    expect(metrics).toMatch(/tributary_requests_denied_total\{reason="invalid_key"\} 1/);
    expect(metrics).not.toContain(CLIENT);
  });
});

describe('rate limits', () => {
  it('limit each key to RATE_LIMIT_PER_KEY requests per second, answering 429 with Retry-After', async () => {
    const { app } = await boot({ API_KEYS: `a:${CLIENT},b:${OTHER}`, RATE_LIMIT_PER_KEY: '3' });
    const send = (key: string) => app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers: { 'x-api-key': key } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await send(CLIENT)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await send(CLIENT);
    expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(0);
    // Another key has its own budget.
    expect((await send(OTHER)).statusCode).toBe(200);
  });
});

describe('load shedding', () => {
  it('answers 503 with Retry-After when more rows wait for the model than MODEL_QUEUE_MAX_ROWS', async () => {
    const { app, registry } = await boot({ MODEL_QUEUE_MAX_ROWS: '4', PREDICT_BATCH_MAX_ROWS: '8' });
    const rows = Array.from({ length: 5 }, (_, i) => ({ ...validRequest, request_id: `r-${i}` }));
    const shed = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows } });
    expect(shed.statusCode).toBe(503);
    expect(shed.json()).toMatchObject({ code: 'OVERLOADED' });
    expect(shed.headers['retry-after']).toBe('1');
    expect(await registry.metrics()).toMatch(/tributary_requests_shed_total\{reason="model_queue_full"\} 1/);
    const fits = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: rows.slice(0, 4) } });
    expect(fits.statusCode).toBe(200);
  });

  it('answers 503 on the prediction routes, not on health checks, while the event loop lags', async () => {
    const { app, registry } = await boot({ SHED_EVENT_LOOP_DELAY_MS: '20' });
    // Work that keeps the event loop 40 ms behind, again and again, for two seconds.
    const lagUntil = Date.now() + 2_000;
    const lag = () => {
      const until = Date.now() + 40;
      while (Date.now() < until);
      if (Date.now() < lagUntil) setTimeout(lag, 0);
    };
    setTimeout(lag, 0);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // at least one full sample of the lag
    const shed = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(shed.statusCode).toBe(503);
    expect(shed.json()).toMatchObject({ code: 'OVERLOADED' });
    expect(shed.headers['retry-after']).toBe('1');
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect(await registry.metrics()).toMatch(/tributary_requests_shed_total\{reason="event_loop_delay"\} 1/);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lagUntil - Date.now()) + 1_100)); // it catches up
    expect((await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).statusCode).toBe(200);
  });
});

describe('POST /v1/predict/batch', () => {
  it('scores every row with one feature fetch and one model run, as single predictions would', async () => {
    const { app, store } = await boot({});
    let reads = 0;
    const read = store.read.bind(store);
    store.read = async (keys) => {
      reads++;
      return read(keys);
    };
    const rows = [
      validRequest,
      {
        ...validRequest,
        request_id: 't-2',
        entities: { user_id: 'u_2', merchant_id: 'm_9' },
        features: { amount: 9000, country: 'FR', channel: 'app' },
      },
    ];
    const batch = await app.inject({ method: 'POST', url: '/v1/predict/batch?explain=true', payload: { rows } });
    expect(batch.statusCode).toBe(200);
    expect(reads).toBe(1);
    const predictions = batch.json().predictions as { request_id: string; score: number; explanation: unknown[] }[];
    expect(predictions.map((p) => p.request_id)).toEqual(['t-1', 't-2']);
    for (const [i, row] of rows.entries()) {
      const single = (await app.inject({ method: 'POST', url: '/v1/predict', payload: row })).json();
      expect(predictions[i]!.score).toBeCloseTo(single.score, 6);
      expect(predictions[i]!.explanation).toHaveLength(15);
    }
    expect(predictions[0]!.score).not.toBeCloseTo(predictions[1]!.score, 3);
  });

  it('refuses an empty batch, too many rows, and names the row at fault', async () => {
    const { app } = await boot({ PREDICT_BATCH_MAX_ROWS: '2' });
    expect((await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [] } })).statusCode).toBe(400);
    const many = await app.inject({
      method: 'POST',
      url: '/v1/predict/batch',
      payload: { rows: [validRequest, validRequest, validRequest] },
    });
    expect(many.statusCode).toBe(400);
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/predict/batch',
      payload: { rows: [validRequest, { ...validRequest, entities: { user_id: 'u_1' } }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'rows.1.entities.merchant_id' });
  });
});
