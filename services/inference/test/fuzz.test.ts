/**
 * Fuzzes the inference service's public HTTP endpoints through `app.inject` (no network):
 * random JSON, valid requests with one field broken, hostile JSON text (bare NaN/Infinity,
 * 1e308, -0), huge strings, deep nesting, `__proto__`/`constructor`/`prototype` keys,
 * invalid UTF-8, lone UTF-16 surrogates, wrong content types, empty and oversized bodies,
 * giant batches, unknown entities and junk query strings.
 *
 * Every answer must be below 500: 2xx for a valid request, 4xx for an invalid one, and
 * every non-2xx body must be the error catalogue's JSON `{ code, message }`. Afterwards the
 * service must still be healthy and `Object.prototype` untouched.
 */
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, validRequest } from './build.js';
import { MAX_EVENT_TIME_AHEAD_MS } from '@tributary/shared';

const SEED = 20_240_611;
const RUNS = 1500;
const MiB = 1024 * 1024;

type App = Awaited<ReturnType<typeof buildTestApp>>;
/** `ok`: 2xx; `reject`: 4xx; `any`: anything below 500 (the input's validity is debatable). */
type Expect = 'ok' | 'reject' | 'any';
interface Probe {
  method?: InjectOptions['method'];
  url: string;
  /** Sent as is; no payload: no body. */
  payload?: string | Buffer;
  /** `null`: no content-type header; default `application/json` when there is a payload. */
  contentType?: string | null;
  headers?: Record<string, string>;
  expect: Expect;
}

let current: App;
const statuses = new Map<number, number>();
let sent = 0;
/** Errors that reached Fastify's error handling, newest last: their stacks explain a 5xx. */
const serverErrors: { url: string; error: Error }[] = [];
const processErrors: unknown[] = [];
const onProcessError = (error: unknown) => processErrors.push(error);
const prototypeSnapshot = () =>
  [Object.prototype, Array.prototype, Function.prototype, String.prototype, Number.prototype].map((p) =>
    Reflect.ownKeys(p).map(String).sort().join(','),
  );
let prototypesBefore: string[];

beforeAll(async () => {
  prototypesBefore = prototypeSnapshot();
  process.on('uncaughtException', onProcessError);
  process.on('unhandledRejection', onProcessError);
  // Load shedding answers 503 when the event loop lags, which depends on this machine's
  // speed, not on the input: off here, so that every 5xx is the input's doing.
  current = await buildTestApp({ env: { SHED_EVENT_LOOP_DELAY_MS: '0' } });
  current.app.addHook('onError', async (request, _reply, error) => {
    serverErrors.push({ url: request.url, error });
  });
  await current.app.ready();
});

afterAll(async () => {
  process.off('uncaughtException', onProcessError);
  process.off('unhandledRejection', onProcessError);
  const counts = [...statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}:${n}`)
    .join(' ');
  console.log(`fuzz: ${sent} requests sent; status counts ${counts}`);
  await current?.app.close();
});

const preview = (payload: string | Buffer | undefined) => {
  if (payload === undefined) return '(no body)';
  const text = typeof payload === 'string' ? payload : `<bytes ${payload.subarray(0, 120).toString('hex')}>`;
  const head = JSON.stringify(text.length > 300 ? `${text.slice(0, 200)}…${text.slice(-60)}` : text);
  return `${head} (${Buffer.byteLength(payload)} bytes)`;
};

const describeProbe = (p: Probe) =>
  `${p.method ?? 'POST'} ${p.url.length > 200 ? `${p.url.slice(0, 200)}… (${p.url.length} chars)` : p.url} ` +
  `content-type=${p.contentType === undefined ? 'application/json' : String(p.contentType)} ` +
  `${p.headers ? `headers=${JSON.stringify(p.headers)} ` : ''}body=${preview(p.payload)}`;

/** What is wrong with the answer to `probe`, or null. */
function verdict(probe: Probe, response: LightMyRequestResponse): string | null {
  const status = response.statusCode;
  if (status >= 500) return 'server error';
  if (status < 200 || (status >= 300 && status < 400)) return 'unexpected status';
  if (probe.expect === 'ok' && (status < 200 || status >= 300)) return 'a valid request was refused';
  if (probe.expect === 'reject' && (status < 400 || status >= 500)) return 'an invalid request was accepted';
  if (status >= 400) {
    let body: unknown;
    try {
      body = JSON.parse(response.body);
    } catch {
      return 'the error body is not JSON';
    }
    const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown };
    if (typeof code !== 'string' || code === '') return 'the error body has no code';
    if (typeof message !== 'string' || message === '') return 'the error body has no message';
  }
  return null;
}

async function send(probe: Probe, app: App['app'] = current.app): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...probe.headers };
  const contentType = probe.contentType === undefined ? (probe.payload === undefined ? null : 'application/json') : probe.contentType;
  if (contentType !== null) headers['content-type'] = contentType;
  const errorsBefore = serverErrors.length;
  let response: LightMyRequestResponse;
  try {
    response = await app.inject({
      method: probe.method ?? 'POST',
      url: probe.url,
      headers,
      ...(probe.payload === undefined ? {} : { payload: probe.payload }),
    });
  } catch (error) {
    throw new Error(`${describeProbe(probe)}\n  -> inject threw: ${(error as Error).stack}`);
  }
  sent++;
  statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
  const problem = verdict(probe, response);
  if (problem) {
    const stacks = serverErrors
      .slice(errorsBefore)
      .map((e) => e.error.stack)
      .join('\n');
    throw new Error(
      `${problem} (expected ${probe.expect}): ${describeProbe(probe)}\n  -> ${response.statusCode} ${response.body.slice(0, 500)}` +
        (stacks ? `\n  server error: ${stacks}` : ''),
    );
  }
  if (response.statusCode === 200 && probe.url.startsWith('/v1/predict')) {
    const body = response.json() as { score?: number; predictions?: { score: number }[] };
    for (const score of body.predictions?.map((p) => p.score) ?? [body.score]) {
      if (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 1) {
        throw new Error(`score ${score} is not a probability: ${describeProbe(probe)}\n  -> ${response.body.slice(0, 500)}`);
      }
    }
  }
  return response;
}

// ---------------------------------------------------------------------------------------
// Oracles: what the API accepts, written from the schemas (shared/src/example/fraud/*.ts).
// ---------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const hasExactly = (v: Record<string, unknown>, required: string[], optional: string[] = []) =>
  required.every((k) => Object.hasOwn(v, k)) && Object.keys(v).every((k) => required.includes(k) || optional.includes(k));
const codePoints = (s: string) => [...s].length;
/** No lone surrogate (with the `u` flag, a pair is one character). */
const wellFormed = /^(?:[^\ud800-\udfff])*$/u;
const isId = (v: unknown) => typeof v === 'string' && /^[A-Za-z0-9_.:-]+$/.test(v) && v.length <= 128;
const isAmount = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1e9;
const isCountry = (v: unknown) => typeof v === 'string' && /^[A-Z]{2}$/.test(v);
const isChannel = (v: unknown) => v === 'web' || v === 'app' || v === 'pos';

/** A row the fraud model can score: the route schema, plus both entities its features need. */
function isValidRow(v: unknown): boolean {
  if (!isPlainObject(v) || !hasExactly(v, ['request_id', 'entities', 'features'])) return false;
  const { request_id: id, entities, features } = v;
  if (typeof id !== 'string' || codePoints(id) < 1 || codePoints(id) > 256 || !wellFormed.test(id)) return false;
  if (
    !isPlainObject(entities) ||
    !hasExactly(entities, ['user_id', 'merchant_id']) ||
    !isId(entities.user_id) ||
    !isId(entities.merchant_id)
  )
    return false;
  return (
    isPlainObject(features) &&
    hasExactly(features, ['amount', 'country', 'channel']) &&
    isAmount(features.amount) &&
    isCountry(features.country) &&
    isChannel(features.channel)
  );
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Events are only generated with `ts` from `toISOString()` or clearly not a date-time. */
function isValidEvent(v: unknown): boolean {
  if (!isPlainObject(v) || !hasExactly(v, ['event_id', 'user_id', 'merchant_id', 'amount', 'currency', 'country', 'channel', 'ts']))
    return false;
  const ts = v.ts;
  const time =
    typeof ts === 'number' && Number.isInteger(ts) && ts >= 0 && ts <= 8.64e15
      ? ts
      : typeof ts === 'string' && ISO_UTC.test(ts)
        ? Date.parse(ts)
        : NaN;
  // Not timed more than an hour ahead of its arrival (now, within the test's run).
  const tsOk = Number.isFinite(time) && time <= Date.now() + MAX_EVENT_TIME_AHEAD_MS;
  return (
    isId(v.event_id) &&
    isId(v.user_id) &&
    isId(v.merchant_id) &&
    isAmount(v.amount) &&
    typeof v.currency === 'string' &&
    /^[A-Z]{3}$/.test(v.currency) &&
    isCountry(v.country) &&
    isChannel(v.channel) &&
    tsOk
  );
}

/** The expected outcome of sending `text` to `url`, judged on what JSON.parse makes of it. */
function oracle(url: string, text: string | undefined): Expect {
  if (text === undefined) return 'reject';
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'reject';
  }
  const path = url.split('?')[0];
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  if (path === '/v1/predict' || path === '/v1/predict/batch') {
    if (!['', 'explain=true', 'explain=1', 'explain=false', 'explain=0'].includes(query)) return 'any';
    if (path === '/v1/predict') return isValidRow(body) ? 'ok' : 'reject';
    return isPlainObject(body) &&
      hasExactly(body, ['rows']) &&
      Array.isArray(body.rows) &&
      body.rows.length >= 1 &&
      body.rows.length <= 256 &&
      body.rows.every(isValidRow)
      ? 'ok'
      : 'reject';
  }
  if (path === '/v1/events/transactions') {
    const events = Array.isArray(body) ? body : [body];
    return events.length >= 1 && events.length <= 1000 && events.every(isValidEvent) ? 'ok' : 'reject';
  }
  return 'any';
}

/** A JSON-serialisable copy of `v` with an own, enumerable `key` (even `__proto__`). */
function withKey(v: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v))
    Object.defineProperty(copy, k, { value: x, enumerable: true, writable: true, configurable: true });
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

const jsonType = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const pct = (bytes: Uint8Array) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

// ---------------------------------------------------------------------------------------
// Arbitraries.
// ---------------------------------------------------------------------------------------

const POST_URLS = [
  '/v1/predict',
  '/v1/predict?explain=true',
  '/v1/predict/batch',
  '/v1/predict/batch?explain=1',
  '/v1/events/transactions',
];
const loneSurrogates = fc.string({
  unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 8,
});
// Well-formed (a lone surrogate is refused: see the mutations and the hostile requests).
const requestId = fc.string({ unit: 'binary', minLength: 1, maxLength: 256 });
const entityId = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/);
const amount = fc.oneof(
  fc.double({ min: 0, max: 1e9, noNaN: true }),
  fc.integer({ min: 0, max: 1e9 }),
  fc.constantFrom(0, -0, 1e9, 5e-324),
);
const country = fc.stringMatching(/^[A-Z]{2}$/);
const channel = fc.constantFrom('web', 'app', 'pos');
const validRow = fc.record({
  request_id: requestId,
  entities: fc.record({ user_id: entityId, merchant_id: entityId }),
  features: fc.record({ amount, country, channel }),
});
const validEvent = fc.record({
  event_id: entityId,
  user_id: entityId,
  merchant_id: entityId,
  amount,
  currency: fc.stringMatching(/^[A-Z]{3}$/),
  country,
  channel,
  // Up to now: an event timed over an hour ahead of its arrival is refused.
  ts: fc.oneof(
    fc.integer({ min: 0, max: Date.now() }),
    fc.date({ min: new Date(0), max: new Date(), noInvalidDate: true }).map((d) => d.toISOString()),
  ),
});
const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '', 'extra'),
  fc.string({ maxLength: 20 }),
);
/** Anything JSON can carry, `__proto__`-style keys included. */
const anyJson: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<Json>,
  fc.dictionary(hostileKey, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) as fc.Arbitrary<Json>,
);

/** A valid body for `url`, as a JSON value. */
const validBody = (url: string): fc.Arbitrary<unknown> => {
  if (url.startsWith('/v1/predict/batch')) return fc.record({ rows: fc.array(validRow, { minLength: 1, maxLength: 8 }) });
  if (url.startsWith('/v1/predict')) return validRow;
  return fc.oneof(validEvent, fc.array(validEvent, { minLength: 1, maxLength: 8 }));
};

/** Paths of every object and value in `v`, root (`[]`) included. */
function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const here = [at];
  if (Array.isArray(v)) return here.concat(...v.map((x, i) => pathsOf(x, [...at, i])));
  if (isPlainObject(v)) return here.concat(...Object.entries(v).map(([k, x]) => pathsOf(x, [...at, k])));
  return here;
}

type Mutation =
  | { kind: 'replace'; value: unknown }
  | { kind: 'delete' }
  | { kind: 'add'; key: string; value: unknown }
  | { kind: 'range'; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  anyJson.map((value) => ({ kind: 'replace' as const, value })),
  fc.constant({ kind: 'delete' as const }),
  fc.record({ key: hostileKey, value: anyJson }).map((m) => ({ kind: 'add' as const, ...m })),
  fc
    .oneof(
      fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
      fc.double({ min: 1e9 + 1 }),
      fc.constantFrom(1e308, -1e308, -1, '', 'x'.repeat(300), 'us', 'USA', 'WEB', 'u 1', 'u/1', '\u0000'),
      loneSurrogates,
    )
    .map((value) => ({ kind: 'range' as const, value })),
);

/** `body` with `m` applied at `path`; undefined when `m` does not change it. */
function mutate(body: unknown, path: (string | number)[], m: Mutation): unknown {
  const copy = clone(body);
  if (path.length === 0) {
    if (m.kind === 'add' && isPlainObject(copy)) return withKey(copy, m.key, m.value);
    return m.kind === 'replace' || m.kind === 'range' ? m.value : copy;
  }
  let parent = copy as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  const target = parent[last];
  if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else if (m.kind === 'add') {
    if (!isPlainObject(target) || Object.hasOwn(target, m.key)) return copy;
    parent[last] = withKey(target, m.key, m.value);
  } else {
    parent[last] = m.value;
  }
  return copy;
}

/** Runs one property with the file's seed; a failure names the shrunk request. */
const check = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, numRuns = RUNS) =>
  fc.assert(fc.asyncProperty(arbitrary, predicate), { seed: SEED, numRuns });

const jsonProbe = (url: string, body: unknown): Probe => {
  const text = JSON.stringify(body) as string | undefined;
  return { url, ...(text === undefined ? {} : { payload: text }), expect: oracle(url, text) };
};

// ---------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------

describe('fuzzing the inference HTTP API', { timeout: 60_000 }, () => {
  it('answers random JSON values with a 4xx and an error body', async () => {
    await check(fc.record({ url: fc.constantFrom(...POST_URLS), body: anyJson }), async ({ url, body }) => {
      await send(jsonProbe(url, body));
    });
  });

  it('answers arbitrary JavaScript values (serialised) without a 5xx', async () => {
    const anything = fc.anything({
      maxDepth: 3,
      withNullPrototype: true,
      withBoxedValues: true,
      withSparseArray: true,
      withObjectString: true,
    });
    await check(fc.record({ url: fc.constantFrom(...POST_URLS), body: anything }), async ({ url, body }) => {
      await send(jsonProbe(url, body));
    });
  });

  it('scores valid requests, batches and events with a 2xx', async () => {
    const probe = fc.constantFrom(...POST_URLS).chain((url) => validBody(url).map((body) => jsonProbe(url, body)));
    await check(probe, async (p) => {
      expect(p.expect).toBe('ok');
      await send(p);
    });
  });

  it('rejects valid requests with one field mutated (wrong type, missing, extra or out of range)', async () => {
    const probe = fc
      .constantFrom(...POST_URLS)
      .chain((url) => validBody(url).map((body) => ({ url, body })))
      .chain(({ url, body }) =>
        fc.record({ path: fc.constantFrom(...pathsOf(body)), m: mutation }).map(({ path, m }) => jsonProbe(url, mutate(body, path, m))),
      );
    await check(probe, async (p) => void (await send(p)), RUNS * 2);
  });

  it('rejects a wrong JSON type at every field of a valid request', async () => {
    const probe = fc
      .constantFrom(...POST_URLS)
      .chain((url) => validBody(url).map((body) => ({ url, body })))
      .chain(({ url, body }) =>
        fc.constantFrom(...pathsOf(body)).chain((path) => {
          const original = path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], body);
          const wrong = anyJson.filter((v) => jsonType(v) !== jsonType(original));
          return wrong.map((value) => {
            const p = jsonProbe(url, mutate(body, path, { kind: 'replace', value }));
            // `ts` may be a number or a string, so a string there is not necessarily wrong.
            return path.at(-1) === 'ts' && typeof value === 'string' ? p : { ...p, expect: 'reject' as const };
          });
        }),
      );
    await check(probe, async (p) => void (await send(p)));
  });

  it('answers random bytes, bodies in any content type and junk query strings without a 5xx', async () => {
    const probe = fc.record({
      url: fc.constantFrom(...POST_URLS).map((u) => u.split('?')[0]!),
      query: fc.oneof(
        fc.constant(''),
        fc.uint8Array({ maxLength: 40 }).map((b) => `?${pct(b)}`),
        fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => `?${s.replace(/[\s#]/g, '')}`),
        fc.constantFrom('?explain=yes', '?explain=true&explain=true', '?explain', '?explain[]=1', '?__proto__[polluted]=1'),
        fc.constantFrom('?constructor[prototype][polluted]=1', '?%', '?%zz=1', '?a=%E0%A4%A', '?explain=%00', `?${'a=1&'.repeat(5000)}`),
      ),
      contentType: fc.oneof(
        fc.constant(null),
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'text/json'),
        fc.constantFrom('application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', '', ';;;', 'a/b/c'),
        fc.string({ unit: 'binary-ascii', maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, '')),
      ),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        validRow.map((r) => JSON.stringify(r)),
        fc.string({ unit: 'binary', maxLength: 200 }),
      ),
    });
    await check(probe, async ({ url, query, contentType, payload }) => {
      await send({ url: url + query, payload, contentType, expect: 'any' });
    });
  });

  it('looks up features of random entities and ids without a 5xx', async () => {
    const probe = fc.record({
      entity: fc.oneof(fc.constantFrom('user_id', 'merchant_id', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 20 })),
      id: fc.oneof(
        entityId,
        fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }),
        fc.uint8Array({ minLength: 1, maxLength: 60 }).map((b) => ({ raw: pct(b) })),
      ),
      query: fc.oneof(
        fc.constant(''),
        fc.string({ unit: 'binary-ascii', maxLength: 30 }).map((s) => `?${encodeURIComponent(s)}`),
      ),
    });
    await check(probe, async ({ entity, id, query }) => {
      const encodedId = typeof id === 'string' ? pct(Buffer.from(id, 'utf8')) : id.raw;
      const known = entity === 'user_id' || entity === 'merchant_id';
      const expected: Expect = known && typeof id === 'string' && isId(id) ? 'ok' : known ? 'any' : 'reject';
      await send({ method: 'GET', url: `/v1/features/${encodeURIComponent(entity)}/${encodedId}${query}`, expect: expected });
    });
  });

  it('answers concurrent mixes of valid and invalid requests', async () => {
    const one = fc.oneof(
      fc.constantFrom(...POST_URLS).chain((url) => validBody(url).map((body) => jsonProbe(url, body))),
      fc.record({ url: fc.constantFrom(...POST_URLS), body: anyJson }).map(({ url, body }) => jsonProbe(url, body)),
    );
    await check(
      fc.array(one, { minLength: 2, maxLength: 24 }),
      async (probes) => void (await Promise.all(probes.map((p) => send(p)))),
      Math.floor(RUNS / 3),
    );
  });
});

// ---------------------------------------------------------------------------------------
// Hand-written hostile requests.
// ---------------------------------------------------------------------------------------

const valid = JSON.stringify(validRequest);
const validEventObject = {
  event_id: 'e_fuzz',
  user_id: 'u_1',
  merchant_id: 'm_1',
  amount: 10,
  currency: 'USD',
  country: 'US',
  channel: 'web',
  ts: 1_700_000_000_000,
};
const validEventText = JSON.stringify(validEventObject);
/** `text` with the JSON string `"@"` replaced by the bare `token`. */
const splice = (value: object, token: string) => JSON.stringify(value).replace('"@"', token);
const requestWith = (patch: (r: typeof validRequest) => unknown) => patch(clone(validRequest));
const deepArrays = (levels: number, inner = '1') => '['.repeat(levels) + inner + ']'.repeat(levels);
const deepObjects = (levels: number, key = 'a', inner = '1') => `{"${key}":`.repeat(levels) + inner + '}'.repeat(levels);
const deepMixed = (levels: number) => {
  let text = '1';
  for (let i = 0; i < levels; i++) text = i % 2 ? `[${text}]` : `{"__proto__x":${text}}`;
  return text;
};
const row = (i: number) => ({ ...validRequest, request_id: `r${i}` });

interface Case extends Probe {
  name: string;
}
const cases: Case[] = [];
const add = (name: string, probe: Probe) => cases.push({ name, ...probe });

// Bare NaN / Infinity tokens and extreme numbers where a number belongs.
const amountTokens: [string, Expect][] = [
  ['NaN', 'reject'],
  ['Infinity', 'reject'],
  ['-Infinity', 'reject'],
  ['1e309', 'reject'],
  ['-1e309', 'reject'],
  ['1e308', 'reject'],
  ['-1e308', 'reject'],
  ['-0', 'ok'],
  ['-0.0e0', 'ok'],
  ['-1e-400', 'ok'],
  ['5e-324', 'ok'],
  ['1e9', 'ok'],
  ['1000000000.5', 'reject'],
  ['-1', 'reject'],
  ['-5e-324', 'reject'],
  ['+1', 'reject'],
  ['01', 'reject'],
  ['.5', 'reject'],
  ['1.', 'reject'],
  ['0x10', 'reject'],
  ['1_000', 'reject'],
  ['undefined', 'reject'],
  ['null', 'reject'],
  ['true', 'reject'],
  ['"1"', 'reject'],
  ['[1]', 'reject'],
  ['{"valueOf":1}', 'reject'],
  ['1'.repeat(100_000), 'reject'],
  [`0.${'0'.repeat(100_000)}1`, 'ok'],
];
for (const [token, expected] of amountTokens) {
  const short = token.length > 20 ? `${token.slice(0, 12)}…(${token.length} chars)` : token;
  add(`predict: amount ${short}`, {
    url: '/v1/predict',
    payload: splice(requestWith((r) => ({ ...r, features: { ...r.features, amount: '@' } })) as object, token),
    expect: expected,
  });
  add(`batch: amount ${short}`, {
    url: '/v1/predict/batch',
    payload: splice({ rows: [row(1), { ...row(2), features: { ...validRequest.features, amount: '@' } }] }, token),
    expect: expected,
  });
  add(`event: amount ${short}`, {
    url: '/v1/events/transactions',
    payload: splice({ ...validEventObject, amount: '@' }, token),
    expect: expected,
  });
}
const tsTokens: [string, Expect][] = [
  ['NaN', 'reject'],
  ['Infinity', 'reject'],
  ['1e309', 'reject'],
  ['-0', 'ok'],
  ['8.64e15', 'reject'], // a valid time, but far ahead
  ['8640000000000001', 'reject'],
  ['1.5', 'reject'],
  ['-1', 'reject'],
  ['1e308', 'reject'],
  ['"2024-01-01T00:00:00Z"', 'ok'],
  ['"2024-13-01T00:00:00Z"', 'reject'],
  ['"2024-01-01"', 'reject'],
  ['"yesterday"', 'reject'],
  ['"\\ud800"', 'reject'],
  [`"${'9'.repeat(100_000)}"`, 'reject'],
];
for (const [token, expected] of tsTokens) {
  const short = token.length > 30 ? `${token.slice(0, 12)}…(${token.length} chars)` : token;
  add(`event: ts ${short}`, { url: '/v1/events/transactions', payload: splice({ ...validEventObject, ts: '@' }, token), expect: expected });
}
for (const token of ['NaN', 'Infinity', '-0', '1e308', 'null', '']) {
  add(`predict: the whole body is ${token || '(empty)'}`, { url: '/v1/predict', payload: token, expect: 'reject' });
  add(`events: the whole body is ${token || '(empty)'}`, { url: '/v1/events/transactions', payload: token, expect: 'reject' });
}
add('predict: a duplicate key, the valid value last', {
  url: '/v1/predict',
  payload: valid.replace('{', '{"request_id":1,'),
  expect: 'ok',
});
add('predict: a duplicate key, the invalid value last', {
  url: '/v1/predict',
  payload: valid.replace(/}$/, ',"request_id":1}'),
  expect: 'reject',
});

// Huge strings (about 1 MB, under the 1 MiB body limit).
const MB = 1_000_000;
add('predict: a 1 MB request_id', {
  url: '/v1/predict',
  payload: JSON.stringify({ ...validRequest, request_id: 'x'.repeat(MB) }),
  expect: 'reject',
});
add('predict: a 1 MB request_id of 3-byte characters', {
  url: '/v1/predict',
  payload: JSON.stringify({ ...validRequest, request_id: '€'.repeat(MB / 3) }),
  expect: 'reject',
});
add('predict: a 1 MB request_id of \\u escapes', {
  url: '/v1/predict',
  payload: valid.replace('"t-1"', `"${'\\u0041'.repeat(MB / 6)}"`),
  expect: 'reject',
});
add('predict: a 1 MB user_id', {
  url: '/v1/predict',
  payload: JSON.stringify(requestWith((r) => ({ ...r, entities: { ...r.entities, user_id: 'u'.repeat(MB) } }))),
  expect: 'reject',
});
add('predict: a 1 MB country', {
  url: '/v1/predict',
  payload: JSON.stringify(requestWith((r) => ({ ...r, features: { ...r.features, country: 'U'.repeat(MB) } }))),
  expect: 'reject',
});
add('predict: a 1 MB channel', {
  url: '/v1/predict',
  payload: JSON.stringify(requestWith((r) => ({ ...r, features: { ...r.features, channel: 'w'.repeat(MB) } }))),
  expect: 'reject',
});
add('predict: a 1 MB unknown key', {
  url: '/v1/predict',
  payload: JSON.stringify(withKey(validRequest, 'k'.repeat(MB), 1)),
  expect: 'reject',
});
add('predict: 1 MB of whitespace around a valid request', {
  url: '/v1/predict',
  payload: `${' '.repeat(MB / 2)}${valid}${'\n'.repeat(MB / 2)}`,
  expect: 'ok',
});
add('events: a 1 MB event_id', {
  url: '/v1/events/transactions',
  payload: JSON.stringify({ ...validEventObject, event_id: 'e'.repeat(MB) }),
  expect: 'reject',
});
add('events: a 1 MB currency', {
  url: '/v1/events/transactions',
  payload: JSON.stringify({ ...validEventObject, currency: 'U'.repeat(MB) }),
  expect: 'reject',
});
add('events: a 1 MB ts string', {
  url: '/v1/events/transactions',
  payload: JSON.stringify({ ...validEventObject, ts: `2024-01-01T00:00:00${'0'.repeat(MB)}Z` }),
  expect: 'reject',
});
add('features: a 1 MB id', { method: 'GET', url: `/v1/features/user_id/${'x'.repeat(MB)}`, expect: 'reject' });
add('features: a 129-character id', { method: 'GET', url: `/v1/features/user_id/${'x'.repeat(129)}`, expect: 'reject' });

// Deep nesting: 10,000 levels, and the deepest that fits in the body limit.
for (const levels of [10_000, 500_000]) {
  const arrays = deepArrays(levels);
  const objects = deepObjects(levels);
  const mixed = deepMixed(Math.min(levels, 150_000));
  for (const url of POST_URLS) {
    add(`${url}: ${levels} nested arrays as the body`, { url, payload: arrays, expect: 'reject' });
    add(`${url}: ${levels} nested objects as the body`, { url, payload: objects, expect: 'reject' });
    add(`${url}: nested objects and arrays as the body`, { url, payload: mixed, expect: 'reject' });
  }
  add(`predict: ${levels} nested arrays as the amount`, {
    url: '/v1/predict',
    payload: splice(requestWith((r) => ({ ...r, features: { ...r.features, amount: '@' } })) as object, arrays),
    expect: 'reject',
  });
  add(`predict: ${levels} nested objects as entities`, {
    url: '/v1/predict',
    payload: splice({ ...validRequest, entities: '@' }, objects),
    expect: 'reject',
  });
  add(`predict: ${levels} nested objects under an unknown key`, {
    url: '/v1/predict',
    payload: splice({ ...validRequest, extra: '@' }, objects),
    expect: 'reject',
  });
  add(`batch: ${levels} nested arrays as rows`, { url: '/v1/predict/batch', payload: splice({ rows: '@' }, arrays), expect: 'reject' });
  add(`events: ${levels} nested arrays in an array of events`, {
    url: '/v1/events/transactions',
    payload: `[${validEventText},${arrays}]`,
    expect: 'reject',
  });
  add(`events: ${levels} nested objects as an event's amount`, {
    url: '/v1/events/transactions',
    payload: splice({ ...validEventObject, amount: '@' }, objects),
    expect: 'reject',
  });
  add(`events: ${levels} nested objects with a __proto__ key at the bottom`, {
    url: '/v1/events/transactions',
    payload: splice({ ...validEventObject, extra: '@' }, deepObjects(levels, 'a', '{"__proto__":{"polluted":true}}')),
    expect: 'reject',
  });
  add(`events: ${levels} nested objects with constructor.prototype at the bottom`, {
    url: '/v1/events/transactions',
    payload: deepObjects(levels, 'a', '{"constructor":{"prototype":{"polluted":true}}}'),
    expect: 'reject',
  });
}

// __proto__ / constructor / prototype keys at every level.
const pollutions = ['{"polluted":true}', '{"constructor":{"prototype":{"polluted":true}}}', '[{"polluted":true}]', '1', 'null'];
for (const key of ['__proto__', 'constructor', 'prototype']) {
  for (const value of pollutions) {
    const at = (label: string, url: string, body: object, path: (string | number)[]) => {
      const target = path.reduce<Record<string | number, unknown>>((v, k) => v[k] as Record<string | number, unknown>, body as never);
      const marked = clone(body) as Record<string | number, unknown>;
      let parent = marked;
      for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
      if (path.length === 0) {
        add(`${label}: "${key}": ${value} at the root`, {
          url,
          payload: JSON.stringify(withKey(marked, '@key', '@')).replace('"@key":"@"', `"${key}":${value}`),
          expect: 'reject',
        });
        return;
      }
      parent[path.at(-1)!] = withKey(target as Record<string, unknown>, '@key', '@');
      add(`${label}: "${key}": ${value} in ${path.join('.')}`, {
        url,
        payload: JSON.stringify(marked).replace('"@key":"@"', `"${key}":${value}`),
        expect: 'reject',
      });
    };
    at('predict', '/v1/predict', validRequest, []);
    at('predict', '/v1/predict', validRequest, ['entities']);
    at('predict', '/v1/predict', validRequest, ['features']);
    at('batch', '/v1/predict/batch', { rows: [row(1), row(2)] }, []);
    at('batch', '/v1/predict/batch', { rows: [row(1), row(2)] }, ['rows', 1]);
    at('batch', '/v1/predict/batch', { rows: [row(1), row(2)] }, ['rows', 1, 'features']);
    at('event', '/v1/events/transactions', validEventObject, []);
    at('events', '/v1/events/transactions', [validEventObject, validEventObject], [1]);
  }
  add(`predict: "${key}" as a query parameter`, {
    url: `/v1/predict?${key}[polluted]=1&${key}.polluted=1`,
    payload: valid,
    expect: 'reject',
  });
  add(`features: "${key}" as the entity`, { method: 'GET', url: `/v1/features/${key}/${key}`, expect: 'reject' });
  add(`features: "${key}" as the id`, { method: 'GET', url: `/v1/features/user_id/${key}`, expect: 'ok' });
  add(`events: "${key}" as the source`, { url: `/v1/events/${key}`, payload: validEventText, expect: 'reject' });
}

// Invalid UTF-8 and UTF-16 surrogates.
const bytesIn = (text: string, marker: string, bytes: number[]) => {
  const [before, after] = text.split(marker) as [string, string];
  return Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);
};
const badSequences: [string, number[]][] = [
  ['0xff', [0xff]],
  ['0xfe 0xff', [0xfe, 0xff]],
  ['a lone continuation byte', [0x80]],
  ['a truncated sequence', [0xe2, 0x82]],
  ['an overlong "/"', [0xc0, 0xaf]],
  ['a CESU-8 surrogate', [0xed, 0xa0, 0x80]],
  ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['a NUL byte', [0x00]],
];
for (const [name, bytes] of badSequences) {
  // Lenient UTF-8 decoding turns bad bytes into U+FFFD, a valid request_id character.
  add(`predict: ${name} in request_id`, {
    url: '/v1/predict',
    payload: bytesIn(JSON.stringify({ ...validRequest, request_id: 'a@b' }), '@', bytes),
    expect: 'any',
  });
  add(`predict: ${name} in user_id`, {
    url: '/v1/predict',
    payload: bytesIn(JSON.stringify(requestWith((r) => ({ ...r, entities: { ...r.entities, user_id: 'u@' } }))), '@', bytes),
    expect: 'reject',
  });
  add(`predict: ${name} in a key`, {
    url: '/v1/predict',
    payload: bytesIn(valid.replace('"features"', '"feat@ures"'), '@', bytes),
    expect: 'reject',
  });
  add(`predict: ${name} outside strings`, {
    url: '/v1/predict',
    payload: bytesIn(valid.replace(',"features"', '@,"features"'), '@', bytes),
    expect: 'reject',
  });
  add(`events: ${name} in event_id`, {
    url: '/v1/events/transactions',
    payload: bytesIn(JSON.stringify({ ...validEventObject, event_id: 'e@' }), '@', bytes),
    expect: 'reject',
  });
  add(`events: ${name} in ts`, {
    url: '/v1/events/transactions',
    payload: bytesIn(JSON.stringify({ ...validEventObject, ts: '2024-01-01T00:00:00@Z' }), '@', bytes),
    expect: 'reject',
  });
}
add('predict: a body ending inside a multi-byte character', {
  url: '/v1/predict',
  payload: Buffer.concat([Buffer.from(valid.slice(0, -3)), Buffer.from([0xe2])]),
  expect: 'reject',
});
for (const [name, escape] of [
  ['a lone high surrogate', '\\ud800'],
  ['a lone low surrogate', '\\udfff'],
  ['a reversed pair', '\\udc00\\ud800'],
  ['an escaped NUL', '\\u0000'],
] as const) {
  // A lone surrogate in a request id is refused (the monitor joins labels to it in Redis, where two would be one).
  add(`predict: ${name} escaped in request_id`, {
    url: '/v1/predict',
    payload: valid.replace('"t-1"', `"t${escape}"`),
    expect: escape === '\\u0000' ? 'ok' : 'reject',
  });
  add(`predict: ${name} escaped in user_id`, { url: '/v1/predict', payload: valid.replace('"u_1"', `"u${escape}"`), expect: 'reject' });
  add(`predict: ${name} escaped in country`, { url: '/v1/predict', payload: valid.replace('"US"', `"U${escape}"`), expect: 'reject' });
  add(`predict: ${name} escaped as a key`, { url: '/v1/predict', payload: valid.replace('{', `{"${escape}":1,`), expect: 'reject' });
  add(`events: ${name} escaped in event_id`, {
    url: '/v1/events/transactions',
    payload: validEventText.replace('"e_fuzz"', `"e${escape}"`),
    expect: 'reject',
  });
}
add('predict: raw lone surrogates in a JavaScript string payload', {
  url: '/v1/predict',
  payload: JSON.stringify({ ...validRequest, request_id: 't\ud800' }).replace('\\ud800', '\ud800'),
  expect: 'ok',
});
add('predict: a UTF-8 byte order mark', {
  url: '/v1/predict',
  payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(valid)]),
  expect: 'any',
});
add('predict: UTF-16LE with a byte order mark', {
  url: '/v1/predict',
  payload: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(valid, 'utf16le')]),
  contentType: 'application/json; charset=utf-16',
  expect: 'reject',
});
add('predict: UTF-16BE without a byte order mark', {
  url: '/v1/predict',
  payload: Buffer.from(valid, 'utf16le').swap16(),
  expect: 'reject',
});

// Content types.
for (const url of ['/v1/predict', '/v1/predict/batch', '/v1/events/transactions']) {
  const body = url === '/v1/events/transactions' ? validEventText : url === '/v1/predict' ? valid : JSON.stringify({ rows: [row(1)] });
  for (const contentType of [
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/octet-stream',
    'application/vnd.api+json',
    '',
    ';',
    'a/b/c',
    'x'.repeat(10_000),
    null,
  ]) {
    add(`${url}: content-type ${contentType === null ? '(none)' : JSON.stringify(contentType.slice(0, 40))}`, {
      url,
      payload: body,
      contentType,
      expect: 'reject',
    });
  }
  for (const contentType of ['application/json; charset=utf-8', 'application/json;charset=UTF-8']) {
    add(`${url}: content-type ${contentType}`, { url, payload: body, contentType, expect: 'ok' });
  }
  for (const contentType of [
    'APPLICATION/JSON',
    'application/json; charset=latin1',
    'application/json, text/plain',
    'application/jsonx',
    ' application/json',
  ]) {
    add(`${url}: content-type ${contentType}`, { url, payload: body, contentType, expect: 'any' });
  }
  add(`${url}: a form body declared as JSON`, { url, payload: 'request_id=x&amount=1', expect: 'reject' });

  // Empty bodies and lying lengths.
  add(`${url}: an empty JSON body`, { url, payload: '', expect: 'reject' });
  add(`${url}: no body and no content type`, { url, contentType: null, expect: 'reject' });
  add(`${url}: whitespace only`, { url, payload: ' \n\t\r ', expect: 'reject' });
  for (const length of ['0', '5', 'abc', '-1', '1e3', '99999999999999', '']) {
    add(`${url}: content-length ${JSON.stringify(length)}`, { url, payload: body, headers: { 'content-length': length }, expect: 'any' });
  }
  add(`${url}: a gzip content-encoding on plain JSON`, { url, payload: body, headers: { 'content-encoding': 'gzip' }, expect: 'any' });

  // Bodies over the limit.
  add(`${url}: a body one byte over 1 MiB`, { url, payload: body + ' '.repeat(MiB + 1 - body.length), expect: 'reject' });
  add(`${url}: a 20 MiB body`, { url, payload: `[${'1,'.repeat(10 * MiB)}1]`, expect: 'reject' });
  add(`${url}: a valid body padded to exactly 1 MiB`, { url, payload: body + ' '.repeat(MiB - body.length), expect: 'ok' });
}

// Giant batches.
const compactRow = JSON.stringify({
  request_id: 'r',
  entities: { user_id: 'u', merchant_id: 'm' },
  features: { amount: 1, country: 'US', channel: 'web' },
});
const rowsText = (n: number, one = compactRow) => `{"rows":[${Array.from({ length: n }, () => one).join(',')}]}`;
add('batch: 256 rows', { url: '/v1/predict/batch?explain=true', payload: rowsText(256), expect: 'ok' });
add('batch: 257 rows', { url: '/v1/predict/batch', payload: rowsText(257), expect: 'reject' });
add('batch: 9,000 rows (under the body limit)', { url: '/v1/predict/batch', payload: rowsText(9_000), expect: 'reject' });
add('batch: 10,000 rows (over the body limit)', { url: '/v1/predict/batch', payload: rowsText(10_000), expect: 'reject' });
add('batch: 10,000 empty rows', { url: '/v1/predict/batch', payload: rowsText(10_000, '{}'), expect: 'reject' });
add('batch: 100,000 nulls', { url: '/v1/predict/batch', payload: rowsText(100_000, 'null'), expect: 'reject' });
add('batch: no rows', { url: '/v1/predict/batch', payload: '{"rows":[]}', expect: 'reject' });
add('batch: 256 rows, the last invalid', {
  url: '/v1/predict/batch',
  payload: rowsText(255).replace(/]}$/, `,${compactRow.replace('"US"', '"us"')}]}`),
  expect: 'reject',
});
add('batch: 256 rows without merchant_id', {
  url: '/v1/predict/batch',
  payload: rowsText(256, compactRow.replace(',"merchant_id":"m"', '')),
  expect: 'reject',
});
const compactEvent = JSON.stringify({ ...validEventObject, event_id: 'e' });
add('events: 1,000 events', { url: '/v1/events/transactions', payload: `[${Array(1_000).fill(compactEvent).join(',')}]`, expect: 'ok' });
add('events: 1,001 events', {
  url: '/v1/events/transactions',
  payload: `[${Array(1_001).fill(compactEvent).join(',')}]`,
  expect: 'reject',
});
add('events: 10,000 events (over the body limit)', {
  url: '/v1/events/transactions',
  payload: `[${Array(10_000).fill(compactEvent).join(',')}]`,
  expect: 'reject',
});
add('events: 100,000 zeros', { url: '/v1/events/transactions', payload: `[${Array(100_000).fill(0).join(',')}]`, expect: 'reject' });
add('events: an empty array', { url: '/v1/events/transactions', payload: '[]', expect: 'reject' });

// Unknown entities and ids, odd routes and methods.
add('predict: unknown entity ids', {
  url: '/v1/predict',
  payload: JSON.stringify({ ...validRequest, entities: { user_id: 'nobody', merchant_id: 'nowhere' } }),
  expect: 'ok',
});
add('predict: an unknown entity type', {
  url: '/v1/predict',
  payload: JSON.stringify({ ...validRequest, entities: { ...validRequest.entities, device_id: 'd' } }),
  expect: 'reject',
});
add('predict: no entities', { url: '/v1/predict', payload: JSON.stringify({ ...validRequest, entities: {} }), expect: 'reject' });
for (const url of [
  '/v1/features/user_id/nobody',
  '/v1/features/merchant_id/m_unknown',
  `/v1/features/user_id/${'x'.repeat(100)}`,
  '/v1/features/user_id/a%2Fb',
  '/v1/features/user_id/%00',
  '/v1/features/user_id/%F0%9F%92%A9',
]) {
  add(`features: GET ${url.slice(0, 60)}`, { method: 'GET', url, expect: 'ok' });
}
for (const url of [
  '/v1/features/device_id/d1',
  '/v1/features/user_id/',
  '/v1/features/user_id',
  '/v1/features//x',
  '/v1/features/user_id/%',
  '/v1/features/user_id/%ff',
  '/v1/features/user_id/%zz',
  '/v1/features/user_id/%ed%a0%80',
  '/v1/features/user_id/a/b',
  `/v1/features/${'e'.repeat(100_000)}/x`,
]) {
  add(`features: GET ${url.slice(0, 60)}`, { method: 'GET', url, expect: 'reject' });
}
for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const) {
  add(`${method} /v1/predict`, { method, url: '/v1/predict', payload: valid, expect: 'reject' });
}
add('events: an unknown source', { url: '/v1/events/clicks', payload: validEventText, expect: 'reject' });
add('events: a 10,000-character source', { url: `/v1/events/${'s'.repeat(10_000)}`, payload: validEventText, expect: 'reject' });

// Query strings with junk.
for (const [query, expected] of [
  ['explain=true', 'ok'],
  ['explain=0', 'ok'],
  ['', 'ok'],
  ['explain=yes', 'reject'],
  ['explain=TRUE', 'reject'],
  ['explain=true&explain=false', 'reject'],
  ['explain[]=true', 'reject'],
  ['foo=bar', 'reject'],
  ['explain=%00', 'reject'],
  ['explain=%ff', 'reject'],
  ['%', 'any'],
  ['%zz=1', 'any'],
  ['explain=true#fragment', 'ok'],
  ['&&&=&=', 'any'],
  ['explain', 'any'],
  [`explain=${'1'.repeat(100_000)}`, 'reject'],
  ['a=1&'.repeat(20_000), 'reject'],
] as [string, Expect][]) {
  add(`predict: query ${JSON.stringify(query.slice(0, 40))}`, { url: `/v1/predict?${query}`, payload: valid, expect: expected });
  add(`batch: query ${JSON.stringify(query.slice(0, 40))}`, {
    url: `/v1/predict/batch?${query}`,
    payload: JSON.stringify({ rows: [row(1)] }),
    expect: expected,
  });
}
// Entity ids may be 128 characters long (the EntityId schema of predict and of the events,
// and this route's own params schema), so the features of every id predict accepts are readable.
for (const length of [101, 128]) {
  add(`features: GET a ${length}-character id`, { method: 'GET', url: `/v1/features/user_id/${'x'.repeat(length)}`, expect: 'ok' });
}
// The client's URL parser resolves dot segments before the request reaches the service.
add('features: GET /v1/features/user_id/..', { method: 'GET', url: '/v1/features/user_id/..', expect: 'any' });
add('features: GET /v1/features/user_id/%2e%2e', { method: 'GET', url: '/v1/features/user_id/%2e%2e', expect: 'any' });
add('events: a junk query', { url: '/v1/events/transactions?__proto__[polluted]=1&%ff=%fe', payload: validEventText, expect: 'any' });
add('features: a junk query', { method: 'GET', url: '/v1/features/user_id/u_1?constructor[prototype][polluted]=1&%=%', expect: 'any' });

describe('hostile requests', () => {
  it.each(cases)('$name', async (c) => {
    await send(c);
  });
});

describe('with API keys and a rate limit', () => {
  const secret = 'fuzz-0123456789abcdef';
  let keyed: App;
  beforeAll(async () => {
    keyed = await buildTestApp({ env: { API_KEYS: `fuzzer:${secret}`, RATE_LIMIT_PER_KEY: '50', SHED_EVENT_LOOP_DELAY_MS: '0' } });
    await keyed.app.ready();
  });
  afterAll(async () => {
    await keyed?.app.close();
  });

  it('answers junk credentials with a 4xx and the right key with a 2xx or a 429', async () => {
    const value = fc.oneof(
      fc.constantFrom(
        secret,
        `Bearer ${secret}`,
        `bearer ${secret}`,
        `Bearer  ${secret}  `,
        'Bearer ',
        'Bearer',
        '',
        `${secret}x`,
        `Basic ${secret}`,
      ),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => s.replace(/[\r\n\0]/g, '')),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => `Bearer ${s.replace(/[\r\n\0]/g, '')}`),
    );
    const probe = fc.record({
      header: fc.constantFrom('authorization', 'x-api-key', 'Authorization', 'X-API-KEY'),
      value,
      body: fc.constantFrom(...POST_URLS).chain((url) => validBody(url).map((b) => ({ url, b }))),
    });
    await check(
      probe,
      async ({ header, value, body }) => {
        const auth = header.toLowerCase() === 'authorization';
        // The scheme in any case.
        const presented = auth ? (value.slice(0, 7).toLowerCase() === 'bearer ' ? value.slice(7).trim() : undefined) : value;
        const p = jsonProbe(body.url, body.b);
        // The right key may still be refused with a 429 by the rate limit: any status below 500.
        await send({ ...p, headers: { [header]: value }, expect: presented === secret ? 'any' : 'reject' }, keyed.app);
      },
      Math.floor(RUNS / 3),
    );
    await send({ ...jsonProbe('/v1/predict', validRequest), expect: 'reject' }, keyed.app);
    await send({ method: 'GET', url: '/v1/features/user_id/u_1', headers: { 'x-api-key': 'nope' }, expect: 'reject' }, keyed.app);
  });
});

describe('after the fuzzing', () => {
  it('is still healthy, still predicts, and nothing was polluted', async () => {
    expect((await current.app.inject('/healthz')).statusCode).toBe(200);
    const response = await current.app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(response.statusCode).toBe(200);
    const score = response.json().score as number;
    expect(Number.isFinite(score)).toBe(true);
    expect(score).toBeGreaterThanOrEqual(0);
    expect(score).toBeLessThanOrEqual(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(prototypeSnapshot()).toEqual(prototypesBefore);
    expect(processErrors).toEqual([]);
    expect(sent).toBeGreaterThan(1000);
    // The onError hook saw the 4xx errors, so it would have caught the stack of a 5xx.
    expect(serverErrors.length).toBeGreaterThan(0);
  });
});
