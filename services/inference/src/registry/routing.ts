/**
 * Which version of each model serves, kept where every replica reads it (Redis, or memory
 * for the embedded default), with an audit log of who changed it, when and why. Each
 * change bumps a revision; a change made against a stale revision is refused, so two
 * operators cannot overwrite each other unknowingly.
 */
import type { Cluster, Redis } from 'ioredis';
import { closeRedis, connectRedis, TributaryError, type RedisTarget } from '@tributary/shared';
import type { RolloutPolicy } from './rollout.js';

export interface Routing {
  model: string;
  /** The version answering requests. */
  champion: string;
  /** Earlier champions, most recent first (what `rollback` returns to). */
  previous: string[];
  /** How requests are shared between the champion and other versions (absent: champion only). */
  policy?: RolloutPolicy;
  /** Versions scored on every request after the answer, never returned. */
  shadows?: string[];
  revision: number;
  updated_at: string;
  updated_by: string;
  reason: string;
}

export interface AuditEntry {
  at: string;
  by: string;
  action: 'init' | 'restore' | 'promote' | 'rollback' | 'rollout' | 'auto_rollback';
  reason: string;
  from: string | null;
  to: string;
  revision: number;
}

export type RoutingUpdate = { ok: true; routing: Routing } | { ok: false; current: Routing | null };

export interface RoutingStore {
  get(model: string): Promise<Routing | null>;
  /** Stores `next` if the stored revision is still `expectedRevision` (0: nothing stored yet). */
  update(next: Routing, expectedRevision: number, audit: AuditEntry): Promise<RoutingUpdate>;
  /** Newest first. */
  audit(model: string, limit: number): Promise<AuditEntry[]>;
  /** Resolves when the store answers (for `/readyz`). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Audit entries kept per model. */
const AUDIT_KEPT = 1000;

export class MemoryRoutingStore implements RoutingStore {
  private readonly routes = new Map<string, Routing>();
  private readonly log = new Map<string, AuditEntry[]>();

  async get(model: string): Promise<Routing | null> {
    const routing = this.routes.get(model);
    return routing ? structuredClone(routing) : null;
  }

  async update(next: Routing, expectedRevision: number, audit: AuditEntry): Promise<RoutingUpdate> {
    const current = this.routes.get(next.model) ?? null;
    if ((current?.revision ?? 0) !== expectedRevision) return { ok: false, current: current && structuredClone(current) };
    this.routes.set(next.model, structuredClone(next));
    const entries = this.log.get(next.model) ?? [];
    entries.unshift(structuredClone(audit));
    entries.length = Math.min(entries.length, AUDIT_KEPT);
    this.log.set(next.model, entries);
    return { ok: true, routing: structuredClone(next) };
  }

  async audit(model: string, limit: number): Promise<AuditEntry[]> {
    return structuredClone((this.log.get(model) ?? []).slice(0, limit));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}

/**
 * KEYS[1] routing key, KEYS[2] audit list; ARGV[1] expected revision, ARGV[2] new routing
 * JSON, ARGV[3] audit entry JSON, ARGV[4] audit entries kept. Returns 1, or the stored
 * routing (or false) when its revision differs.
 */
const UPDATE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
local revision = 0
if current then revision = cjson.decode(current).revision end
if tostring(revision) ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return 1
`;

type RedisWithUpdate = (Redis | Cluster) & {
  updateRouting(...keysAndArgs: string[]): Promise<1 | string | null>;
};

/**
 * The options of the clients of the Redis that holds the routing (and the rewards): a call fails
 * after two reconnections, or after 2 s without an answer (a Redis that is frozen, not down, keeps
 * the connection open: without the deadline an admin request or a routing poll would wait for ever).
 */
export const ROUTING_REDIS_OPTIONS = { maxRetriesPerRequest: 2, commandTimeout: 2_000 } as const;

/**
 * Whether a call to that Redis failed for want of an answer in time (the deadline above): a write
 * may still have been applied, so trying it again may apply it twice.
 */
export function unanswered(error: unknown): boolean {
  const cause = error instanceof TributaryError ? error.cause : error;
  return cause instanceof Error && cause.message === 'Command timed out';
}

/** A failed call to the Redis that holds the routing (and the rewards): 503, retriable. `write`: the call changes it. */
export function unavailable(error: unknown, write = false): never {
  const message = unanswered(error)
    ? `the routing store (Redis) did not answer within ${ROUTING_REDIS_OPTIONS.commandTimeout} ms` +
      (write ? ': the change may still be applied (read the routing before trying again)' : '')
    : `the routing store (Redis) did not answer: ${(error as Error).message}`;
  throw new TributaryError('ROUTING_STORE_UNAVAILABLE', message, { cause: error });
}

export class RedisRoutingStore implements RoutingStore {
  private readonly client: RedisWithUpdate;

  constructor(
    target: RedisTarget,
    private readonly keyPrefix: string,
  ) {
    this.client = connectRedis(target, ROUTING_REDIS_OPTIONS) as RedisWithUpdate;
    this.client.defineCommand('updateRouting', { numberOfKeys: 2, lua: UPDATE_SCRIPT });
    this.client.on('error', () => {});
  }

  // Both keys of a model share the `{model}` hash tag (one Redis Cluster slot).
  private keys(model: string): [string, string] {
    return [`${this.keyPrefix}routing:{${model}}`, `${this.keyPrefix}routing:{${model}}:audit`];
  }

  async get(model: string): Promise<Routing | null> {
    const key = this.keys(model)[0];
    const text = await this.client.get(key).catch(unavailable);
    if (text === null) return null;
    let routing: Partial<Routing> | null = null;
    try {
      routing = JSON.parse(text) as Partial<Routing> | null;
    } catch {
      // reported below
    }
    if (typeof routing?.champion !== 'string' || !Number.isSafeInteger(routing.revision) || !Array.isArray(routing.previous)) {
      throw new TributaryError(
        'ROUTING_STORE_UNAVAILABLE',
        `the routing store holds no routing of ${model} at ${key} (written by something else, or damaged): delete that key, and the serving replicas write back the routing they serve at their next poll`,
      );
    }
    return routing as Routing;
  }

  async update(next: Routing, expectedRevision: number, audit: AuditEntry): Promise<RoutingUpdate> {
    const [routingKey, auditKey] = this.keys(next.model);
    const result = await this.client
      .updateRouting(routingKey, auditKey, String(expectedRevision), JSON.stringify(next), JSON.stringify(audit), String(AUDIT_KEPT))
      .catch((error: unknown) => unavailable(error, true));
    if (result === 1) return { ok: true, routing: next };
    return { ok: false, current: result === null ? null : (JSON.parse(result) as Routing) };
  }

  async audit(model: string, limit: number): Promise<AuditEntry[]> {
    const entries = await this.client.lrange(this.keys(model)[1], 0, limit - 1).catch(unavailable);
    // An entry that cannot be read (written by something else) is left out, not the log.
    return entries.flatMap((entry) => {
      try {
        const parsed = JSON.parse(entry) as AuditEntry | null;
        return typeof parsed === 'object' && parsed !== null && typeof parsed.action === 'string' ? [parsed] : [];
      } catch {
        return [];
      }
    });
  }

  /**
   * Fails (ROUTING_STORE_UNAVAILABLE) unless Redis answers within `ms`: for a command-line
   * tool, before it works (a Redis Cluster that cannot be reached keeps commands queued for
   * as long as the process lives).
   */
  async reachable(ms = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    });
    try {
      await Promise.race([this.client.ping(), late]).catch(unavailable);
    } finally {
      clearTimeout(timer);
    }
  }

  async ping(): Promise<void> {
    await this.client.ping().catch(unavailable);
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}

/** A routing in a few words, for the audit log: `champion 2; canary 3 at 10%; shadows 4`. */
export function describeRollout(routing: Routing): string {
  const parts = [`champion ${routing.champion}`];
  const policy = routing.policy ?? { kind: 'champion' };
  if (policy.kind === 'canary') parts.push(`canary ${policy.version} at ${policy.percent}%`);
  if (policy.kind === 'ab') parts.push(`A/B ${policy.arms.map((a) => `${a.version}:${a.weight}`).join(', ')}`);
  if (policy.kind === 'bandit') parts.push(`bandit ${policy.versions.join(', ')}`);
  if (routing.shadows?.length) parts.push(`shadows ${routing.shadows.join(', ')}`);
  return parts.join('; ');
}

/**
 * Ends a model's rollout policy (the champion answers every request again; shadows stay),
 * as the monitor's canary rule does: audited with `action`, refused (null) when the routing
 * has no policy to end, or is no longer at `revision` (the one judged: another rollout set
 * meanwhile is not ended in its place), or changes while this is written.
 */
export async function endRollout(
  routes: RoutingStore,
  model: string,
  by: string,
  reason: string,
  action: AuditEntry['action'] = 'auto_rollback',
  revision?: number,
): Promise<Routing | null> {
  const current = await routes.get(model);
  if (!current || (current.policy ?? { kind: 'champion' }).kind === 'champion') return null;
  if (revision !== undefined && current.revision !== revision) return null;
  const next: Routing = {
    ...current,
    policy: { kind: 'champion' },
    revision: current.revision + 1,
    updated_at: new Date().toISOString(),
    updated_by: by,
    reason,
  };
  const audit: AuditEntry = {
    at: next.updated_at,
    by,
    action,
    reason,
    from: describeRollout(current),
    to: describeRollout(next),
    revision: next.revision,
  };
  const result = await routes.update(next, current.revision, audit);
  return result.ok ? result.routing : null;
}
