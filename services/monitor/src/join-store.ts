/**
 * Where predictions wait for their labels and labels for their predictions (labels arrive
 * days later, sometimes before the prediction is logged). Each side is offered once per
 * record; the store answers whether it is now joined, waiting, or a duplicate (a replay
 * after a restart, or a second label for one request). Offers are atomic per request, so
 * a label is joined exactly once whatever the replays, and what waits survives restarts.
 *
 * A waiting side is due at its deadline (event time + join window); `sweep` removes what is
 * due and counts it (expired predictions, unmatched labels), each exactly once even with
 * several monitors sweeping. Keys of one request share a Redis Cluster hash slot.
 *
 * On Redis, a batch of offers (one per record of a Kafka batch) is one script call per 500
 * offers, all in one pipeline: a script per offer cost the client ~3x the CPU (one ioredis
 * command each) and Redis more time. The script still changes each request atomically and
 * in order; on a Redis Cluster the calls would have to be split per hash slot.
 */
import { Redis } from 'ioredis';

export type Side = 'prediction' | 'label';

export interface Offer {
  side: Side;
  requestId: string;
  /** The side's record, kept until joined (compact JSON). */
  value: string;
  /** When it stops waiting (epoch ms): its event time plus the join window. */
  deadline: number;
}

export type OfferResult = { kind: 'waiting' } | { kind: 'duplicate' } | { kind: 'joined'; other: string };

export interface SweepResult {
  predictions: number;
  labels: number;
}

export interface JoinStore {
  /** Applies the offers in order (one round trip); one result per offer. */
  offer(offers: Offer[]): Promise<OfferResult[]>;
  /** Removes and counts the waiting sides whose deadline is at or before `now` (at most `limit`). */
  sweep(now: number, limit: number): Promise<SweepResult>;
  close(): Promise<void>;
}

const OTHER: Record<Side, Side> = { prediction: 'label', label: 'prediction' };
const DUPLICATE: OfferResult = Object.freeze({ kind: 'duplicate' });
const WAITING: OfferResult = Object.freeze({ kind: 'waiting' });

interface Entry {
  prediction?: string;
  label?: string;
  joined?: boolean;
  /** When the entry itself is forgotten (a joined marker, or a side long past due). */
  forgetAt: number;
}

/** The in-memory store (the embedded default), with the Redis store's semantics. */
export class MemoryJoinStore implements JoinStore {
  private readonly entries = new Map<string, Entry>();
  private readonly due: { deadline: number; side: Side; requestId: string }[] = [];

  constructor(private readonly keepMs: number) {}

  async offer(offers: Offer[]): Promise<OfferResult[]> {
    return offers.map(({ side, requestId, value, deadline }) => {
      let entry = this.entries.get(requestId);
      if (entry && entry.forgetAt <= Date.now()) {
        this.entries.delete(requestId);
        entry = undefined;
      }
      if (entry?.joined || entry?.[side] !== undefined) return { kind: 'duplicate' };
      const other = entry?.[OTHER[side]];
      if (other !== undefined) {
        this.entries.set(requestId, { joined: true, forgetAt: deadline + this.keepMs });
        return { kind: 'joined', other };
      }
      this.entries.set(requestId, { ...entry, [side]: value, forgetAt: deadline + this.keepMs });
      this.due.push({ deadline, side, requestId });
      return { kind: 'waiting' };
    });
  }

  async sweep(now: number, limit: number): Promise<SweepResult> {
    this.due.sort((a, b) => a.deadline - b.deadline);
    const result: SweepResult = { predictions: 0, labels: 0 };
    let taken = 0;
    while (taken < this.due.length && taken < limit && this.due[taken]!.deadline <= now) {
      const { side, requestId } = this.due[taken++]!;
      const entry = this.entries.get(requestId);
      if (entry?.[side] === undefined) continue;
      delete entry[side];
      if (entry.prediction === undefined && entry.label === undefined) this.entries.delete(requestId);
      if (side === 'prediction') result.predictions++;
      else result.labels++;
    }
    this.due.splice(0, taken);
    return result;
  }

  async close(): Promise<void> {}
}

/**
 * Offers a batch of sides, in order, in one script call. KEYS[i]: the hash `{rid}` of offer
 * i's request (fields `prediction`, `label`, `joined`); ARGV[3i-2] its side (`prediction` or
 * `label`), ARGV[3i-1] its value, ARGV[3i] ms to keep the hash. Returns one reply per offer:
 * 0 duplicate, 1 waiting, or the other side's value (joined). A later offer sees what the
 * earlier ones did, as if each were its own call.
 */
const OFFER_SCRIPT = `
local results = {}
for i = 1, #KEYS do
  local key, side, keep = KEYS[i], ARGV[3 * i - 2], ARGV[3 * i]
  local other = side == 'prediction' and 'label' or 'prediction'
  local found = redis.call('HMGET', key, 'joined', side, other)
  if found[1] or found[2] then
    results[i] = 0
  elseif found[3] then
    redis.call('DEL', key)
    redis.call('HSET', key, 'joined', '1')
    redis.call('PEXPIRE', key, keep)
    results[i] = found[3]
  else
    -- Nothing was found: the hash is new (it only ever holds those three fields).
    redis.call('HSET', key, side, ARGV[3 * i - 1])
    redis.call('PEXPIRE', key, keep)
    results[i] = 1
  end
end
return results
`;

/** Offers per script call at most (a call blocks Redis while it runs). */
const OFFERS_PER_CALL = 500;

/** KEYS[1] the request's hash; ARGV[1] the side. Removes it; 1 if it was still waiting. */
const EXPIRE_SCRIPT = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
`;

interface RedisWithJoin extends Redis {
  /** `keys` then, per key, side, value and ms to keep. */
  offerSides(keys: number, ...keysThenArgs: string[]): Promise<(0 | 1 | string)[]>;
  expireSide(key: string, side: string): Promise<number>;
}

export class RedisJoinStore implements JoinStore {
  private readonly client: RedisWithJoin;

  /**
   * `keepMs`: how long a joined marker (and a side past its deadline, should no sweep run)
   * stays, so that replays and late duplicates are recognised.
   */
  constructor(
    url: string,
    private readonly prefix: string,
    private readonly keepMs: number,
  ) {
    this.client = new Redis(url, { maxRetriesPerRequest: 2 }) as RedisWithJoin;
    this.client.defineCommand('offerSides', { lua: OFFER_SCRIPT });
    this.client.defineCommand('expireSide', { numberOfKeys: 1, lua: EXPIRE_SCRIPT });
    this.client.on('error', () => {});
  }

  private key(requestId: string): string {
    return `${this.prefix}join:{${requestId}}`;
  }

  /** The index of waiting sides by deadline: one sorted set, members `<side>|<request id>`. */
  private get dueKey(): string {
    return `${this.prefix}join-due`;
  }

  async offer(offers: Offer[]): Promise<OfferResult[]> {
    if (offers.length === 0) return [];
    const pipeline = this.client.pipeline() as unknown as RedisWithJoin & { exec(): Promise<[Error | null, unknown][] | null> };
    const now = Date.now();
    for (let start = 0; start < offers.length; start += OFFERS_PER_CALL) {
      const chunk = offers.slice(start, start + OFFERS_PER_CALL);
      const keysThenArgs = new Array<string>(chunk.length * 4);
      chunk.forEach(({ side, requestId, value, deadline }, i) => {
        keysThenArgs[i] = this.key(requestId);
        const arg = chunk.length + 3 * i;
        keysThenArgs[arg] = side;
        keysThenArgs[arg + 1] = value;
        keysThenArgs[arg + 2] = String(Math.max(1, deadline - now + this.keepMs));
      });
      void pipeline.offerSides(chunk.length, ...keysThenArgs);
    }
    const replies = (await pipeline.exec()) ?? [];
    const results: OfferResult[] = [];
    const due: (string | number)[] = [];
    for (const [error, reply] of replies) {
      if (error) throw error;
      for (const answer of reply as (0 | 1 | string)[]) {
        const offer = offers[results.length]!;
        if (answer === 1) due.push(offer.deadline, `${offer.side}|${offer.requestId}`);
        results.push(answer === 0 ? DUPLICATE : answer === 1 ? WAITING : { kind: 'joined', other: answer });
      }
    }
    if (results.length !== offers.length) throw new Error(`label join: ${offers.length} offers but ${results.length} replies`);
    // The index is written after the sides: a side whose index entry was lost in a crash is
    // offered again on replay (a duplicate then), and its hash still expires on its own.
    if (due.length > 0) await this.client.zadd(this.dueKey, ...due);
    return results;
  }

  async sweep(now: number, limit: number): Promise<SweepResult> {
    const members = await this.client.zrangebyscore(this.dueKey, '-inf', now, 'LIMIT', 0, limit);
    const result: SweepResult = { predictions: 0, labels: 0 };
    if (members.length === 0) return result;
    const pipeline = this.client.pipeline() as unknown as RedisWithJoin & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const member of members) {
      const bar = member.indexOf('|');
      void pipeline.expireSide(this.key(member.slice(bar + 1)), member.slice(0, bar));
    }
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([error, removed], i) => {
      if (error) throw error;
      if (removed !== 1) return;
      if (members[i]!.startsWith('prediction|')) result.predictions++;
      else result.labels++;
    });
    await this.client.zrem(this.dueKey, ...members);
    return result;
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
