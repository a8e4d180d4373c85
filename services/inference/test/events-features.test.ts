import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore } from '@tributary/shared';
import { buildTestApp } from './build.js';

type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  vi.useRealTimers();
  await current?.app.close();
  current = null;
});

const transaction = (i: number, overrides: Record<string, unknown> = {}) => ({
  event_id: `e${i}`,
  user_id: 'u_1',
  merchant_id: 'm_1',
  amount: 10 * i,
  currency: 'USD',
  country: 'US',
  channel: 'web',
  ts: new Date().toISOString(),
  ...overrides,
});

interface OpenApi {
  paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown }>>;
  components: { securitySchemes: unknown };
}

describe('POST /v1/events/:source (push API)', () => {
  it('publishes one event keyed by its entity', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: transaction(1) });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ accepted: 1, topic: 'transactions' });
    const records = (current.eventLog as MemoryEventLog).records('transactions');
    expect(records.map((r) => [r.key, JSON.parse(r.value!.toString()).event_id])).toEqual([['u_1', 'e1']]);
  });

  it('publishes an array of events', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({
      method: 'POST',
      url: '/v1/events/transactions',
      payload: [transaction(1), transaction(2)],
    });
    expect(response.statusCode).toBe(202);
    expect(response.json().accepted).toBe(2);
    expect((current.eventLog as MemoryEventLog).records('transactions')).toHaveLength(2);
  });

  it('rejects the whole request when one event is invalid, naming it and the field', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({
      method: 'POST',
      url: '/v1/events/transactions',
      payload: [transaction(1), transaction(2, { amount: 'ten' })],
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(response.json().message).toMatch(/event \[1\]: amount/);
    expect((current.eventLog as MemoryEventLog).records('transactions')).toHaveLength(0);
  });

  it.each([
    ['an unknown field', transaction(1, { extra: true }), /unknown field.*"extra"/],
    ['a missing field', (({ merchant_id: _m, ...rest }) => rest)(transaction(1)), /missing required field.*"merchant_id"/],
    [
      'a bad event time',
      transaction(1, { ts: 'yesterday' }),
      /^ts: must be an epoch-milliseconds integer \(0 to 8\.64e15\) or an RFC 3339 date-time$/,
    ],
    [
      'an impossible date',
      transaction(1, { ts: '2026-13-45T99:00:00Z' }),
      /^ts: must be an epoch-milliseconds integer .* or an RFC 3339 date-time$/,
    ],
    ['a negative amount', transaction(1, { amount: -5 }), /^amount:/],
    // Well-formed, but what the feature pipeline would dead-letter as invalid whenever it read them.
    [
      'an event time far ahead',
      transaction(1, { ts: '9999-01-01T00:00:00Z' }),
      /^ts: 9999-01-01T00:00:00.000Z is more than 60 minutes ahead of the time it was received/,
    ],
    [
      'an event time over an hour ahead',
      transaction(1, { ts: new Date(Date.now() + 61 * 60_000).toISOString() }),
      /^ts: .* is more than 60 minutes ahead/,
    ],
    ['an event time before 1970', transaction(1, { ts: '1969-12-31T23:59:59Z' }), /^ts: not a valid event time/],
  ])('rejects %s', async (_name, payload, message) => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: payload as object });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(message);
  });

  it('rejects labelled transactions whose ids are no well-formed text or merchant id (Redis keys are UTF-8: two lone surrogates would share one)', async () => {
    current = await buildTestApp();
    const labelled = (fields: object) => ({ event_id: 'e_1', merchant_id: 'm_1', label: 1, ts: Date.now() - 1000, ...fields });
    const ok = await current.app.inject({ method: 'POST', url: '/v1/events/labelled_transactions', payload: labelled({}) });
    expect(ok.statusCode).toBe(202);
    for (const [fields, field] of [
      [{ merchant_id: '\ud800' }, 'merchant_id'],
      [{ merchant_id: 'm 1' }, 'merchant_id'],
      [{ event_id: 'e_\udbff' }, 'event_id'],
    ] as const) {
      const response = await current.app.inject({ method: 'POST', url: '/v1/events/labelled_transactions', payload: labelled(fields) });
      expect(response.statusCode, JSON.stringify(fields)).toBe(400);
      expect(response.json().message).toMatch(new RegExp(`^${field}:`));
    }
    expect((current.eventLog as MemoryEventLog).records('labelled-transactions')).toHaveLength(1);
  });

  it('rejects an empty or oversized array of events', async () => {
    current = await buildTestApp({ env: { MAX_EVENTS_PER_REQUEST: '2' } });
    const empty = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: [] });
    expect(empty.statusCode).toBe(400);
    const big = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: [1, 2, 3].map((i) => transaction(i)) });
    expect(big.statusCode).toBe(400);
    expect(big.json().message).toMatch(/at most 2/);
  });

  it('answers 404 for an unknown source', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'POST', url: '/v1/events/clicks', payload: transaction(1) });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ code: 'UNKNOWN_SOURCE' });
  });

  it('answers 503 with Retry-After when the event log refuses the events', async () => {
    const eventLog = new MemoryEventLog();
    eventLog.publish = async () => {
      throw new Error('broker unreachable');
    };
    current = await buildTestApp({ eventLog });
    const response = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: transaction(1) });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json().code).toBe('EVENT_LOG_UNAVAILABLE');
  });

  it('answers 503 with Retry-After at EVENTS_PUBLISH_TIMEOUT when the event log does not answer', async () => {
    const eventLog = new MemoryEventLog();
    eventLog.publish = () => new Promise<void>(() => {});
    current = await buildTestApp({ eventLog, env: { EVENTS_PUBLISH_TIMEOUT: '20ms' } });
    const response = await current.app.inject({ method: 'POST', url: '/v1/events/transactions', payload: transaction(1) });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json()).toEqual({
      code: 'EVENT_LOG_UNAVAILABLE',
      message: 'could not publish to transactions: no answer within 20 ms',
    });
  });
});

describe('GET /v1/features/:entity/:id', () => {
  it('returns null values and no freshness for an unknown entity', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'GET', url: '/v1/features/user_id/nobody' });
    expect(response.statusCode).toBe(200);
    const [group] = response.json().groups;
    expect(group).toMatchObject({ group: 'user_transactions', version: 1, newest_event_time: null, freshness_ms: null });
    expect(group.values.count_1h).toBeNull();
  });

  it('answers 404 for an entity type no feature group uses', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'GET', url: '/v1/features/device_id/d1' });
    expect(response.statusCode).toBe(404);
    expect(response.json().message).toMatch(/user_id, merchant_id/);
  });

  it('answers 503 when the online store does not answer within FEATURE_FETCH_TIMEOUT_MS', async () => {
    const store = new MemoryOnlineStore();
    store.read = () => new Promise(() => {});
    current = await buildTestApp({ store, env: { FEATURE_FETCH_TIMEOUT_MS: '50' } });
    const response = await current.app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      code: 'ONLINE_STORE_UNAVAILABLE',
      message: 'online store unavailable: no answer within 50 ms',
    });
  });

  it("counts against the caller's rate limit, as the prediction routes do", async () => {
    const key = 'client-secret-000001';
    current = await buildTestApp({ env: { API_KEYS: `web:${key}`, RATE_LIMIT_PER_KEY: '2' } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await current.app.inject({ method: 'GET', url: '/v1/features/user_id/u_1', headers: { 'x-api-key': key } });
      statuses.push(response.statusCode);
    }
    expect(statuses).toEqual([200, 200, 429]);
  });
});

describe('GET /v1/feature-groups', () => {
  it('lists every feature group as defined: entity, source, windows with their tiles, TTL and defaults', async () => {
    current = await buildTestApp();
    const response = await current.app.inject({ method: 'GET', url: '/v1/feature-groups' });
    expect(response.statusCode).toBe(200);
    const groups = response.json().groups as { name: string; features: { name: string }[] }[];
    expect(groups.map((g) => g.name)).toEqual(['user_transactions', 'merchant_transactions', 'merchant_labels']);
    const user = groups[0]!;
    expect(user).toMatchObject({
      name: 'user_transactions',
      version: 1,
      entity: 'user_id',
      entity_fields: ['user_id'],
      source: { name: 'transactions', topic: 'transactions', event_time_field: 'ts', event_id_field: 'event_id' },
      ttl: '2d',
      ttl_ms: 2 * 86_400_000,
      filters: [],
    });
    // One feature per (aggregation, window), in the declared order; a window's tile is the largest standard size not above a sixth of it.
    expect(user.features).toHaveLength(11);
    expect(user.features[0]).toEqual({
      name: 'count_10m',
      column: '*',
      op: 'count',
      window: '10m',
      window_ms: 600_000,
      tile_ms: 60_000,
      default: null,
    });
    expect(user.features).toContainEqual({
      name: 'amount_mean_24h',
      column: 'amount',
      op: 'mean',
      window: '24h',
      window_ms: 86_400_000,
      tile_ms: 3_600_000,
      default: 50,
    });
    expect(user.features).toContainEqual(expect.objectContaining({ name: 'country_last_24h', op: 'last', default: null }));
  });

  it('answers one group by name, and 404 naming the known groups for another', async () => {
    current = await buildTestApp();
    const one = await current.app.inject({ method: 'GET', url: '/v1/feature-groups/merchant_labels' });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'merchant_labels', entity: 'merchant_id' });
    const missing = await current.app.inject({ method: 'GET', url: '/v1/feature-groups/nothing' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({
      code: 'NOT_FOUND',
      message: 'no feature group is named "nothing" (known groups: user_transactions, merchant_transactions, merchant_labels)',
    });
  });

  it('needs the API key the client routes need, when keys are set', async () => {
    const key = 'client-secret-000001';
    current = await buildTestApp({ env: { API_KEYS: `web:${key}` } });
    expect((await current.app.inject({ method: 'GET', url: '/v1/feature-groups' })).statusCode).toBe(401);
    expect((await current.app.inject({ method: 'GET', url: '/v1/feature-groups', headers: { 'x-api-key': key } })).statusCode).toBe(200);
  });
});

describe('operations endpoints', () => {
  it('serves health, readiness, metrics and the OpenAPI document', async () => {
    current = await buildTestApp();
    await current.app.inject({
      method: 'POST',
      url: '/v1/predict',
      payload: { request_id: 'r', entities: { user_id: 'u', merchant_id: 'm' }, features: { amount: 1, country: 'US', channel: 'app' } },
    });
    expect((await current.app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    expect((await current.app.inject('/readyz')).statusCode).toBe(200);
    const metrics = (await current.app.inject('/metrics')).body;
    expect(metrics).toMatch(/tributary_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} 1/);
    expect(metrics).toMatch(/tributary_prediction_duration_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 1/);
    const openapi = (await current.app.inject('/docs/json')).json();
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(['/v1/predict', '/v1/events/{source}', '/v1/features/{entity}/{id}']),
    );
  });

  it("describes every answer's status and the key an operation needs in the OpenAPI document", async () => {
    const operation = (doc: OpenApi, path: string, method: string) => doc.paths[path]![method]!;
    const open = (await (current = await buildTestApp()).app.inject('/docs/json')).json() as OpenApi;
    for (const [path, method] of [
      ['/v1/predict', 'post'],
      ['/v1/predict/batch', 'post'],
      ['/v1/events/{source}', 'post'],
      ['/admin/models/{name}/promote', 'post'],
    ]) {
      expect(Object.keys(operation(open, path!, method!).responses), path).toEqual(expect.arrayContaining(['400', '401', '500', '503']));
    }
    // Without API_KEYS the client routes are open; the admin routes always need a key, sent either way.
    expect(open.components.securitySchemes).toEqual({
      bearer: { type: 'http', scheme: 'bearer' },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
    });
    const securityOf = (doc: OpenApi) =>
      Object.entries(doc.paths).flatMap(([path, operations]) => Object.values(operations).map((o) => [path, o.security] as const));
    for (const [path, security] of securityOf(open)) {
      expect(security, path).toEqual(path.startsWith('/admin/') ? [{ bearer: [] }, { apiKey: [] }] : undefined);
    }
    await current.app.close();
    const keyed = (
      await (current = await buildTestApp({ env: { API_KEYS: 'web:client-secret-000001' } })).app.inject('/docs/json')
    ).json() as OpenApi;
    for (const [path, security] of securityOf(keyed)) expect(security, path).toEqual([{ bearer: [] }, { apiKey: [] }]);
  });

  it('declares the headers of 429 (Retry-After, X-RateLimit-*) and 503 (Retry-After) answers in the OpenAPI document', async () => {
    current = await buildTestApp();
    const doc = (await current.app.inject('/docs/json')).json() as {
      paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, unknown> }> }>>;
    };
    const declared = (status: string) =>
      Object.entries(doc.paths).flatMap(([path, operations]) =>
        Object.entries(operations)
          .filter(([, operation]) => operation.responses[status])
          .map(([method, operation]) => [`${method} ${path}`, Object.keys(operation.responses[status]!.headers ?? {})] as const),
      );
    expect(declared('429').map(([operation]) => operation)).toEqual(
      expect.arrayContaining(['post /v1/predict', 'post /v1/events/{source}']),
    );
    for (const [operation, headers] of declared('429')) {
      expect(headers, operation).toEqual(['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']);
    }
    expect(declared('503').length).toBeGreaterThan(0);
    for (const [operation, headers] of declared('503')) expect(headers, operation).toEqual(['Retry-After']);
  });

  it('documents every status GET /v1/features answers in the OpenAPI document: 400, 414 and 429 too', async () => {
    const key = 'client-secret-000001';
    // The rate limiter's clock stands still: every request falls in one window.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.UTC(2026, 10, 29, 12, 0, 0) });
    current = await buildTestApp({ env: { API_KEYS: `web:${key}`, RATE_LIMIT_PER_KEY: '3' } });
    const get = (url: string) => current!.app.inject({ method: 'GET', url, headers: { 'x-api-key': key } });
    const answered = new Set<number>();
    for (const url of [
      '/v1/features/user_id/u_1',
      `/v1/features/user_id/${'x'.repeat(129)}`,
      `/v1/features/user_id/${'x'.repeat(600)}`,
      '/v1/features/device_id/d1',
      '/v1/features/user_id/u_1',
      '/v1/features/user_id/u_1',
    ]) {
      answered.add((await get(url)).statusCode);
    }
    answered.add((await current.app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' })).statusCode);
    expect([...answered].sort()).toEqual([200, 400, 401, 404, 414, 429]);
    const openapi = (await current.app.inject('/docs/json')).json() as OpenApi;
    const documented = Object.keys(openapi.paths['/v1/features/{entity}/{id}']!.get!.responses);
    for (const status of answered) expect(documented, String(status)).toContain(String(status));
    // A path parameter beyond the router's limit, on the other routes that take one.
    const longSource = await current.app.inject({ method: 'POST', url: `/v1/events/${'x'.repeat(600)}`, payload: {} });
    expect(longSource.statusCode).toBe(414);
    expect(longSource.json().code).toBe('URI_TOO_LONG');
    expect(Object.keys(openapi.paths['/v1/events/{source}']!.post!.responses)).toContain('414');
    expect(Object.keys(openapi.paths['/admin/models/{name}/promote']!.post!.responses)).toContain('414');
  });

  it('answers 404 as JSON for an unknown route', async () => {
    current = await buildTestApp();
    const response = await current.app.inject('/v2/nothing');
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('NOT_FOUND');
  });
});
