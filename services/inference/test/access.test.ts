import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, loadConfig } from '@tributary/shared';
import { installAccess } from '../src/access.js';
import { createFastify } from '../src/app.js';
import { buildTestApp, validRequest } from './build.js';

const CLIENT = 'client-secret-000001';
const OTHER = 'client-secret-000002';
type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  vi.useRealTimers();
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
    // The scheme in any case.
    for (const scheme of ['bearer', 'BEARER']) {
      const answer = await app.inject({
        method: 'POST',
        url: '/v1/predict',
        payload: validRequest,
        headers: { authorization: `${scheme} ${CLIENT}` },
      });
      expect(answer.statusCode, scheme).toBe(200);
    }
    // Operations routes stay open for probes and scrapers.
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/tributary_requests_denied_total\{reason="missing_key"\} 3/);
    expect(metrics).toMatch(/tributary_requests_denied_total\{reason="invalid_key"\} 1/);
    expect(metrics).not.toContain(CLIENT);
  });
});

describe('API key lookup', () => {
  it('compares digests of the secrets, never looking a presented secret up among the configured ones', async () => {
    // The configured keys, recording every lookup made with a secret.
    const lookups: string[] = [];
    class Recorded extends Map<string, string> {
      override get(key: string) {
        lookups.push(key);
        return super.get(key);
      }
      override has(key: string) {
        lookups.push(key);
        return super.has(key);
      }
    }
    const app = createFastify({ logger: createLogger('test', 'silent'), bodyLimit: 1024 });
    await installAccess(app, {
      apiKeys: new Recorded([[CLIENT, 'web']]),
      adminKeys: new Recorded([[OTHER, 'ops']]),
      ratePerKey: 0,
      shedEventLoopDelayMs: 0,
      shed: () => {},
      denied: () => {},
      rateLimited: () => {},
    });
    app.get('/client', { config: { access: 'client' } }, async (request) => ({ caller: request.caller }));
    app.get('/admin', { config: { access: 'admin' } }, async (request) => ({ caller: request.caller }));
    const get = (url: string, key: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
    expect((await get('/client', CLIENT)).json()).toEqual({ caller: 'web' });
    expect((await get('/admin', OTHER)).json()).toEqual({ caller: 'ops' });
    expect((await get('/client', `${CLIENT.slice(0, -1)}x`)).statusCode).toBe(401);
    expect((await get('/admin', CLIENT)).statusCode).toBe(403);
    expect(lookups).toEqual([]);
    await app.close();
  });
});

describe('rate limits', { timeout: 30_000 }, () => {
  const THIRD = 'client-secret-000003';
  /** Freezes the clock the rate limiter reads: every request falls in one window, however slow the machine. */
  const freeze = () => vi.useFakeTimers({ toFake: ['Date'], now: Date.UTC(2026, 10, 29, 12, 0, 0) });
  const sender = (app: App['app']) => (key: string) =>
    app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers: { 'x-api-key': key } });
  const statuses = async (send: (key: string) => Promise<{ statusCode: number }>, key: string, n: number) => {
    const seen = [];
    for (let i = 0; i < n; i++) seen.push((await send(key)).statusCode);
    return seen;
  };

  it('limit each key to RATE_LIMIT_PER_KEY requests per second, answering 429 with Retry-After', async () => {
    freeze();
    const { app } = await boot({ API_KEYS: `a:${CLIENT},b:${OTHER}`, RATE_LIMIT_PER_KEY: '3' });
    const send = sender(app);
    expect(await statuses(send, CLIENT, 5)).toEqual([200, 200, 200, 429, 429]);
    const limited = await send(CLIENT);
    expect(limited.json()).toEqual({
      code: 'RATE_LIMITED',
      message: 'rate limit of 3 requests per second for API key "a" exceeded; retry in 1 second',
    });
    expect(limited.headers['retry-after']).toBe('1');
    // Another key has its own budget.
    expect((await send(OTHER)).statusCode).toBe(200);
  });

  it('count one budget per key across the client routes, not one per route', async () => {
    freeze();
    const { app } = await boot({ API_KEYS: `a:${CLIENT},b:${OTHER}`, RATE_LIMIT_PER_KEY: '3' });
    const headers = { 'x-api-key': CLIENT };
    const seen = [
      (await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers })).statusCode,
      (await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [validRequest] }, headers })).statusCode,
      (await app.inject({ method: 'GET', url: '/v1/features/user_id/u_1', headers })).statusCode,
      (await app.inject({ method: 'GET', url: '/v1/features/merchant_id/m_1', headers })).statusCode,
      (await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers })).statusCode,
    ];
    expect(seen).toEqual([200, 200, 200, 429, 429]);
    // Routes that are not client routes are not counted, nor limited.
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await sender(app)(OTHER)).statusCode).toBe(200);
  });

  it("refuse a limited key's request before its body is read: a 429, not a 400 or 413", async () => {
    freeze();
    const { app } = await boot({ API_KEYS: `a:${CLIENT}`, RATE_LIMIT_PER_KEY: '1' });
    const headers = { 'x-api-key': CLIENT, 'content-type': 'application/json' };
    expect((await sender(app)(CLIENT)).statusCode).toBe(200);
    const invalid = await app.inject({ method: 'POST', url: '/v1/predict', payload: '{"request_id": 1}', headers });
    const malformed = await app.inject({ method: 'POST', url: '/v1/events/transactions', payload: '{', headers });
    const oversized = await app.inject({ method: 'POST', url: '/v1/predict', payload: `"${'x'.repeat(2 * 1024 * 1024)}"`, headers });
    expect([invalid.statusCode, malformed.statusCode, oversized.statusCode]).toEqual([429, 429, 429]);
  });

  it('give a key its own limit from RATE_LIMITS; the others keep RATE_LIMIT_PER_KEY; refusals counted per key id', async () => {
    freeze();
    const { app, registry } = await boot({
      API_KEYS: `a:${CLIENT},b:${OTHER},c:${THIRD}`,
      RATE_LIMITS: 'a=2,b=5',
      RATE_LIMIT_PER_KEY: '3',
    });
    const send = sender(app);
    expect(await statuses(send, CLIENT, 3)).toEqual([200, 200, 429]);
    expect(await statuses(send, OTHER, 6)).toEqual([200, 200, 200, 200, 200, 429]);
    expect(await statuses(send, THIRD, 4)).toEqual([200, 200, 200, 429]);
    const a = await send(CLIENT);
    expect(a.statusCode).toBe(429);
    expect(a.headers['retry-after']).toBe('1');
    expect(a.json().message).toBe('rate limit of 2 requests per second for API key "a" exceeded; retry in 1 second');
    expect((await send(OTHER)).json().message).toBe('rate limit of 5 requests per second for API key "b" exceeded; retry in 1 second');
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/tributary_requests_rate_limited_total\{key="a"\} 2/);
    expect(metrics).toMatch(/tributary_requests_rate_limited_total\{key="b"\} 2/);
    expect(metrics).toMatch(/tributary_requests_rate_limited_total\{key="c"\} 1/);
    for (const secret of [CLIENT, OTHER, THIRD]) expect(metrics).not.toContain(secret);
    // The next second, each key has its budget again.
    vi.setSystemTime(Date.now() + 1000);
    expect(await statuses(send, CLIENT, 3)).toEqual([200, 200, 429]);
  });

  it('count per client address without keys: the peer, or the client a trusted proxy names (TRUST_PROXY)', async () => {
    freeze();
    const from = (app: App['app'], forwardedFor: string) =>
      app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest, headers: { 'x-forwarded-for': forwardedFor } });
    // Behind an ingress every request comes from its address: one budget for all its clients.
    const direct = await boot({ RATE_LIMIT_PER_KEY: '1' });
    expect(await direct.registry.metrics()).toMatch(/^tributary_requests_rate_limited_total\{key="anonymous"\} 0$/m);
    expect([(await from(direct.app, '203.0.113.1')).statusCode, (await from(direct.app, '203.0.113.2')).statusCode]).toEqual([200, 429]);
    await direct.app.close();
    // inject's requests come from 127.0.0.1: a trusted proxy, which names each client.
    for (const trust of ['true', 'loopback', '127.0.0.1', '10.0.0.0/8,127.0.0.0/8']) {
      const { app } = await boot({ RATE_LIMIT_PER_KEY: '1', TRUST_PROXY: trust });
      const seen = [(await from(app, '203.0.113.1')).statusCode, (await from(app, '203.0.113.2')).statusCode];
      seen.push((await from(app, '203.0.113.1')).statusCode);
      expect(seen, trust).toEqual([200, 200, 429]);
      await app.close();
    }
    for (const bad of ['maybe', '10.0.0.0/33', '1', '1.2.3.4,,nope']) {
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/);
    }
    // Only the listed proxies: a client that sends the header itself is counted by its own address.
    const { app } = await boot({ RATE_LIMIT_PER_KEY: '1', TRUST_PROXY: '10.0.0.1' });
    expect([(await from(app, '203.0.113.1')).statusCode, (await from(app, '203.0.113.2')).statusCode]).toEqual([200, 429]);
  });

  it('leave a key of limit 0 unlimited, and limit only the listed keys when there is no default', async () => {
    freeze();
    const first = await boot({ API_KEYS: `a:${CLIENT},b:${OTHER}`, RATE_LIMITS: 'a=0', RATE_LIMIT_PER_KEY: '1' });
    let { app } = first;
    // Each limited key's refusals counted from 0 (a series first seen at 1 shows no rate), the unlimited key's not at all.
    const before = await first.registry.metrics();
    expect(before).toMatch(/^tributary_requests_rate_limited_total\{key="b"\} 0$/m);
    expect(before).not.toMatch(/tributary_requests_rate_limited_total\{key="a"\}/);
    expect(await statuses(sender(app), CLIENT, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(await statuses(sender(app), OTHER, 2)).toEqual([200, 429]);
    await app.close();
    ({ app } = await boot({ API_KEYS: `a:${CLIENT},b:${OTHER}`, RATE_LIMITS: 'a=1' }));
    expect(await statuses(sender(app), CLIENT, 2)).toEqual([200, 429]);
    expect(await statuses(sender(app), OTHER, 5)).toEqual([200, 200, 200, 200, 200]);
  });

  it('refuse to start on a bad RATE_LIMITS, naming the variable and never a secret', async () => {
    const start = boot({ API_KEYS: `a:${CLIENT}`, RATE_LIMITS: 'a=1,z=2' });
    await expect(start).rejects.toThrow('RATE_LIMITS names "z", not the id of any key in API_KEYS');
    await expect(start).rejects.not.toThrow(CLIENT);
  });
});

describe('load shedding', () => {
  it('answers 503 with Retry-After when more rows wait for the model than MODEL_QUEUE_MAX_ROWS', async () => {
    const { app, registry } = await boot({ MODEL_QUEUE_MAX_ROWS: '4', PREDICT_BATCH_MAX_ROWS: '4' });
    const rows = Array.from({ length: 3 }, (_, i) => ({ ...validRequest, request_id: `r-${i}` }));
    // Two batches of one turn: the second finds 3 of the queue's 4 rows taken.
    const [first, shed] = await Promise.all([0, 1].map(() => app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows } })));
    expect(first!.statusCode).toBe(200);
    expect(shed!.statusCode).toBe(503);
    expect(shed!.json()).toMatchObject({ code: 'OVERLOADED' });
    expect(shed!.headers['retry-after']).toBe('1');
    expect(await registry.metrics()).toMatch(/tributary_requests_shed_total\{reason="model_queue_full"\} 1/);
    const fits = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows } });
    expect(fits.statusCode).toBe(200);
  });

  it('does not shed for the delay of its own start', async () => {
    const { app, registry } = await boot({ SHED_EVENT_LOOP_DELAY_MS: '20' });
    // The start holds the event loop (loading and timing a model) for more than a sample's half second.
    const until = Date.now() + 700;
    while (Date.now() < until);
    await app.ready();
    await new Promise((resolve) => setTimeout(resolve, 50)); // the sample of the start is taken
    expect((await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).statusCode).toBe(200);
    expect(await registry.metrics()).toMatch(/tributary_requests_shed_total\{reason="event_loop_delay"\} 0/);
  });

  it('answers 503 on the prediction routes, not on health checks, while the event loop lags', async () => {
    const { app, registry } = await boot({ SHED_EVENT_LOOP_DELAY_MS: '20' });
    await app.ready(); // started, as a listening service is
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
    const one = await app.inject({
      method: 'POST',
      url: '/v1/predict/batch',
      payload: { rows: [{ ...validRequest, entities: { user_id: 'u_1' } }] },
    });
    expect(one.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'rows.0.entities.merchant_id' });
  });

  it('scores a batch of more rows than one model run takes, as single predictions would', async () => {
    const { app } = await boot({ PREDICT_BATCH_MAX_ROWS: '300', MODEL_BATCH_MAX_ROWS: '64' });
    const rows = Array.from({ length: 300 }, (_, i) => ({
      ...validRequest,
      request_id: `big-${i}`,
      features: { ...validRequest.features, amount: 10 + 37 * i },
    }));
    const batch = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows } });
    expect(batch.statusCode, batch.body).toBe(200);
    const predictions = batch.json().predictions as { request_id: string; score: number }[];
    expect(predictions.map((p) => p.request_id)).toEqual(rows.map((r) => r.request_id));
    for (const i of [0, 63, 64, 200, 299]) {
      const single = (await app.inject({ method: 'POST', url: '/v1/predict', payload: rows[i] })).json();
      expect(predictions[i]!.score, `row ${i}`).toBeCloseTo(single.score, 6);
    }
  });
});
