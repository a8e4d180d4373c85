/**
 * Who may call what, and how much: API keys (`Authorization: Bearer <secret>` or
 * `x-api-key`), optional on the prediction, push and feature routes and mandatory on the admin
 * routes; a request rate per key (each key's own, or one for all); and load shedding (503 with Retry-After) when the event
 * loop falls behind, so that an overloaded replica answers quickly instead of slowly.
 * Routes say what applies to them in their `config`: `access` and `shed`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TributaryError } from '@tributary/shared';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `open` (default), `client`: an API key when keys are configured, `admin`: an admin key, always. */
    access?: 'open' | 'client' | 'admin';
    /** Refused with 503 while the process is overloaded. */
    shed?: boolean;
  }
  interface FastifyRequest {
    /** The id of the API key the request authenticated with. */
    caller?: string;
  }
}

export interface AccessOptions {
  /** secret -> id; undefined: client routes are open. */
  apiKeys?: Map<string, string>;
  /** secret -> id; undefined: the admin routes refuse every request. */
  adminKeys?: Map<string, string>;
  /** Requests per second per key (or client address); 0: unlimited. */
  ratePerKey: number;
  /** Requests per second of particular keys, by key id, instead of `ratePerKey`; 0: unlimited. */
  rateLimits?: Map<string, number>;
  /** Event-loop delay, ms, above which shed routes answer 503; 0: never. */
  shedEventLoopDelayMs: number;
  shed(reason: 'event_loop_delay'): void;
  denied(reason: 'missing_key' | 'invalid_key' | 'admin_disabled'): void;
  /**
   * A request refused for its key's rate limit: the key id, or `anonymous` without keys (never a
   * secret or an address); with `count` 0, at start, each key that has a limit.
   */
  rateLimited(key: string, count?: 0): void;
}

/** The window of the event-loop delay that sheds: its mean over half a second. */
const SHED_SAMPLE_MS = 500;

function secretOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  // The scheme is case-insensitive (RFC 9110): `bearer` and `BEARER` too.
  if (typeof header === 'string' && header.slice(0, 7).toLowerCase() === 'bearer ') return header.slice(7).trim();
  const key = request.headers['x-api-key'];
  return typeof key === 'string' ? key : undefined;
}

interface KeyDigest {
  id: string;
  digest: Buffer;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** The keys by the SHA-256 of their secrets: what a presented secret is compared with. */
function digests(keys: Map<string, string>): KeyDigest[] {
  return [...keys].map(([secret, id]) => ({ id, digest: sha256(secret) }));
}

/**
 * The id of the key whose secret hashes as `secret` does, or undefined. Every key's digest is
 * compared in constant time, none skipped: how long it takes does not depend on how much of a
 * secret a caller guessed (a Map lookup on the secret compares strings, and stops at the first
 * character that differs).
 */
function keyOf(keys: KeyDigest[], secret: string): string | undefined {
  const digest = sha256(secret);
  let found: string | undefined;
  for (const key of keys) if (timingSafeEqual(key.digest, digest)) found = key.id;
  return found;
}

export async function installAccess(app: FastifyInstance, options: AccessOptions): Promise<void> {
  const apiKeys = options.apiKeys && digests(options.apiKeys);
  const adminKeys = options.adminKeys && digests(options.adminKeys);
  const refuse = (reason: Parameters<AccessOptions['denied']>[0], code: 'UNAUTHORIZED' | 'FORBIDDEN', message: string) => {
    options.denied(reason);
    return new TributaryError(code, message);
  };
  // A callback hook, not an async one: most requests pass through it, and it allocates nothing for them.
  app.addHook('onRequest', (request, _reply, done) => {
    const access = request.routeOptions.config.access ?? 'open';
    if (access === 'open') return done();
    const keys = access === 'admin' ? adminKeys : apiKeys;
    if (!keys) {
      if (access === 'client') return done();
      return done(refuse('admin_disabled', 'FORBIDDEN', 'the admin API is disabled: set ADMIN_API_KEYS to enable it'));
    }
    const secret = secretOf(request);
    if (secret === undefined) {
      return done(refuse('missing_key', 'UNAUTHORIZED', 'an API key is required: send it as "Authorization: Bearer <key>" or "x-api-key"'));
    }
    const caller = keyOf(keys, secret);
    if (caller === undefined) {
      // A client's key on an admin route is known, just not allowed there: 403, not 401.
      if (access === 'admin' && apiKeys && keyOf(apiKeys, secret) !== undefined) {
        return done(refuse('invalid_key', 'FORBIDDEN', 'this key is not an admin API key'));
      }
      return done(refuse('invalid_key', 'UNAUTHORIZED', access === 'admin' ? 'this key is not an admin API key' : 'unknown API key'));
    }
    request.caller = caller;
    done();
  });

  if (options.shedEventLoopDelayMs > 0) {
    // A sample that began before the service was ready measures its start (loading and timing
    // the model), not its load: none sheds.
    let shedsFrom = Infinity;
    app.addHook('onReady', (done) => {
      shedsFrom = Date.now() + SHED_SAMPLE_MS;
      done();
    });
    await app.register(underPressure, {
      maxEventLoopDelay: options.shedEventLoopDelayMs,
      // The mean delay over half a second: a window with no sample at all would read as
      // an infinite delay, which short windows on a busy machine risk.
      sampleInterval: SHED_SAMPLE_MS,
      pressureHandler: (request, _reply, _type, value) => {
        if (!request.routeOptions.config.shed || Date.now() < shedsFrom) return undefined;
        options.shed('event_loop_delay');
        return Promise.reject(
          new TributaryError('OVERLOADED', `the service is overloaded (event loop ${Math.round(Number(value))} ms behind); retry shortly`),
        );
      },
    });
  }

  const { ratePerKey, rateLimits } = options;
  if (ratePerKey === 0 && !rateLimits?.size) return;
  const limitOf = (request: FastifyRequest) => (request.caller === undefined ? undefined : rateLimits?.get(request.caller)) ?? ratePerKey;
  // Each limited key counted from 0: a counter series first seen at 1 shows no rate in Prometheus.
  const limited = options.apiKeys
    ? [...new Set(options.apiKeys.values())].filter((id) => (rateLimits?.get(id) ?? ratePerKey) > 0)
    : ['anonymous'];
  for (const id of limited) options.rateLimited(id, 0);
  // One counter per key across every client route (a limiter per route would give a key its
  // limit on each of them): the global limiter, whose routes share one store, left to the
  // client routes (the others pass through).
  await app.register(rateLimit, {
    global: true,
    // Before the body is read and parsed (a limited key gets a 429, not a 1 MiB parse and a
    // 400 or 413), and after the authentication hook (a route hook runs after the application's),
    // so that the limit is counted per key.
    hook: 'onRequest',
    timeWindow: 1000,
    max: limitOf,
    allowList: (request) => request.routeOptions.config.access !== 'client' || limitOf(request) === 0,
    keyGenerator: (request) => (request.caller ? `key:${request.caller}` : `ip:${request.ip}`),
    onExceeded: (request) => options.rateLimited(request.caller ?? 'anonymous'),
    errorResponseBuilder: (request, context) =>
      new TributaryError(
        'RATE_LIMITED',
        `rate limit of ${context.max} requests per second ${request.caller ? `for API key "${request.caller}"` : 'per client address'} exceeded; retry in ${context.after}`,
      ),
  });
}

/** The route config of a client route: its access rule and shedding (its rate limit is its key's, shared by every client route). */
export function clientRoute() {
  return { access: 'client' as const, shed: true };
}
