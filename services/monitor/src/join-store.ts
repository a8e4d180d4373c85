/**
 * Where predictions wait for their labels and labels for their predictions (labels arrive
 * days later, sometimes before the prediction is logged). A request may have several
 * predictions: the answering version's and each shadow's, one per prediction unit (variant,
 * model and version); its label joins every one of them, whichever comes first. Each side is
 * offered once per record; the store answers whether it is now joined, waiting, or a
 * duplicate (a replay after a restart, a unit logged twice, or a second label for one
 * request). Offers are atomic per request, so each prediction unit is joined exactly once
 * whatever the replays, and what waits survives restarts.
 *
 * A label stays until its deadline even once it has joined, so that a prediction logged after
 * it (a shadow scored late) joins too. A waiting side is due at its deadline (event time + join
 * window); `sweep` removes what is due and counts it each exactly once even with several
 * monitors sweeping: a prediction unit still waiting is an expired prediction, a label is
 * unmatched only if it joined no prediction.
 *
 * On a single Redis, a batch of offers (one per record of a Kafka batch) is one script call
 * per 500 offers, all in one pipeline: a script per offer cost the client ~3x the CPU (one
 * ioredis command each) and Redis more time. The script still changes each request atomically
 * and in order, and adds the sides left waiting to the due index in the same step (no second
 * round trip per batch for a ZADD). On a Redis Cluster a script may only name keys of one slot: each offer is its
 * own call there (the request's key named first, as the cluster client routes by it),
 * auto-pipelining sends the calls of a batch to each node at once, and the due index (one key,
 * one slot) is written after them.
 */
import type { Cluster, Redis } from 'ioredis';
import { connectRedis, type RedisTarget } from '@tributary/shared';

export type Side = 'prediction' | 'label';

interface OfferOf<S extends Side> {
  side: S;
  requestId: string;
  /** The side's record, kept until joined (compact JSON). */
  value: string;
  /** When it stops waiting (epoch ms): its event time plus the join window. */
  deadline: number;
}

/**
 * A prediction names its unit (e.g. `<variant>:<model>:<version>`): the predictions of one
 * request are joined to its label once per unit.
 */
export type Offer = (OfferOf<'prediction'> & { unit: string }) | OfferOf<'label'>;

/**
 * `joined`: the values of the sides this offer joined, in the order of their units for a label
 * (every prediction waiting for it), the label's for a prediction.
 */
export type OfferResult = { kind: 'waiting' } | { kind: 'duplicate' } | { kind: 'joined'; others: string[] };

export interface SweepResult {
  predictions: number;
  labels: number;
  /** Sides taken off the due index (those counted and those that no longer count): `limit` when more may be due. */
  taken: number;
}

/**
 * Offers that failed in part: `results` holds the answers of the offers that were applied
 * (null for the others). What they joined is joined once only: offered again, they are
 * duplicates, so the caller takes their joins from here before the batch is retried.
 */
export class OfferError extends Error {
  constructor(
    readonly results: readonly (OfferResult | null)[],
    cause: unknown,
  ) {
    super(
      `label join: offers failed in part (${results.filter((r) => r === null).length} of ${results.length} without an answer): ${String(cause)}`,
      {
        cause,
      },
    );
    this.name = 'OfferError';
  }
}

/** A sweep that failed in part: `swept` counts the sides it removed before failing (to count all the same). */
export class SweepError extends Error {
  constructor(
    readonly swept: SweepResult,
    cause: unknown,
  ) {
    super(
      `label join: sweep failed in part (${swept.predictions} predictions and ${swept.labels} labels expired before): ${String(cause)}`,
      {
        cause,
      },
    );
    this.name = 'SweepError';
  }
}

export interface JoinStore {
  /**
   * Applies the offers in order (one round trip); one result per offer. Fails with an OfferError
   * holding the answers of the offers applied when only some were.
   */
  offer(offers: Offer[]): Promise<OfferResult[]>;
  /**
   * Removes and counts the waiting sides whose deadline is at or before `now` (at most `limit`).
   * Fails with a SweepError counting what it removed when some sides could not be.
   */
  sweep(now: number, limit: number): Promise<SweepResult>;
  close(): Promise<void>;
}

const DUPLICATE: OfferResult = Object.freeze({ kind: 'duplicate' });
const WAITING: OfferResult = Object.freeze({ kind: 'waiting' });

/** A request's state: the Redis hash's fields, as the Redis store keeps them. */
interface Entry {
  /** Predictions waiting for the label, by unit (fields `p:<unit>`). */
  waiting: Map<string, string>;
  /** Units joined to the label (fields `j:<unit>`). */
  joined: Set<string>;
  /** The label, until its deadline (field `label`). */
  label?: string;
  /** Whether the label joined a prediction (field `labelled`): kept after the label's deadline. */
  labelled: boolean;
  /** When the entry itself is forgotten (the latest deadline of its sides plus the keep time). */
  forgetAt: number;
}

/** A side in the due index: a prediction unit's field `p:<unit>`, or `label`. */
const predictionField = (unit: string) => `p:${unit}`;
const LABEL_FIELD = 'label';
/** A side's member in the due index: `[field, request id]` as JSON. */
const dueMember = (field: string, requestId: string) => JSON.stringify([field, requestId]);

/** The in-memory store (the embedded default), with the Redis store's semantics. */
export class MemoryJoinStore implements JoinStore {
  private readonly entries = new Map<string, Entry>();
  private readonly due: { deadline: number; field: string; requestId: string }[] = [];
  /** When each request may be forgotten (its entry's `forgetAt` when set): `sweep` drops what is past, as Redis expires a hash. */
  private readonly forgets: { at: number; requestId: string }[] = [];

  constructor(private readonly keepMs: number) {}

  /** Requests remembered (waiting, or kept to recognise replays). */
  get size(): number {
    return this.entries.size;
  }

  private keep(entry: Entry, requestId: string, deadline: number): void {
    // As on Redis: a side offered past its deadline is kept the keep time from now.
    const at = Math.max(deadline, Date.now()) + this.keepMs;
    if (at <= entry.forgetAt) return;
    entry.forgetAt = at;
    this.forgets.push({ at, requestId });
  }

  async offer(offers: Offer[]): Promise<OfferResult[]> {
    return offers.map((offer) => {
      const { requestId, value, deadline } = offer;
      let entry = this.entries.get(requestId);
      if (entry && entry.forgetAt <= Date.now()) {
        this.entries.delete(requestId);
        entry = undefined;
      }
      if (entry === undefined) {
        entry = { waiting: new Map(), joined: new Set(), labelled: false, forgetAt: 0 };
        this.entries.set(requestId, entry);
      }
      if (offer.side === 'prediction') {
        const { unit } = offer;
        if (entry.waiting.has(unit) || entry.joined.has(unit)) return DUPLICATE;
        this.keep(entry, requestId, deadline);
        if (entry.label !== undefined) {
          entry.joined.add(unit);
          entry.labelled = true;
          return { kind: 'joined', others: [entry.label] };
        }
        entry.waiting.set(unit, value);
        this.due.push({ deadline, field: predictionField(unit), requestId });
        return WAITING;
      }
      if (entry.label !== undefined || entry.labelled) return DUPLICATE;
      this.keep(entry, requestId, deadline);
      entry.label = value;
      this.due.push({ deadline, field: LABEL_FIELD, requestId });
      if (entry.waiting.size === 0) return WAITING;
      const units = [...entry.waiting.keys()].sort(byteOrder);
      const others = units.map((unit) => entry.waiting.get(unit)!);
      for (const unit of units) entry.joined.add(unit);
      entry.waiting.clear();
      entry.labelled = true;
      return { kind: 'joined', others };
    });
  }

  async sweep(now: number, limit: number): Promise<SweepResult> {
    this.due.sort((a, b) => a.deadline - b.deadline);
    const result: SweepResult = { predictions: 0, labels: 0, taken: 0 };
    let taken = 0;
    while (taken < this.due.length && taken < limit && this.due[taken]!.deadline <= now) {
      const { field, requestId } = this.due[taken++]!;
      const entry = this.entries.get(requestId);
      if (entry === undefined) continue;
      if (field === LABEL_FIELD) {
        if (entry.label === undefined) continue;
        entry.label = undefined;
        if (!entry.labelled) result.labels++;
      } else if (entry.waiting.delete(field.slice(2))) {
        result.predictions++;
      }
      if (entry.waiting.size === 0 && entry.joined.size === 0 && entry.label === undefined && !entry.labelled) {
        this.entries.delete(requestId);
      }
    }
    this.due.splice(0, taken);
    result.taken = taken;
    this.forgets.sort((a, b) => a.at - b.at);
    let forgotten = 0;
    while (forgotten < this.forgets.length && this.forgets[forgotten]!.at <= now) {
      const { requestId } = this.forgets[forgotten++]!;
      const entry = this.entries.get(requestId);
      if (entry !== undefined && entry.forgetAt <= now) this.entries.delete(requestId);
    }
    this.forgets.splice(0, forgotten);
    return result;
  }

  async close(): Promise<void> {}
}

/** The order of the predictions a label joins: by unit (the same in both stores). */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Offers a batch of sides, in order, in one script call. KEYS[i]: the hash `{rid}` of offer
 * i's request, with fields `p:<unit>` (a prediction waiting for the label), `j:<unit>` (a unit
 * joined), `label` (the label, until its deadline) and `labelled` (the label joined a
 * prediction). ARGV[4i-3] offer i's side (`prediction` or `label`), ARGV[4i-2] its unit (empty
 * for a label), ARGV[4i-1] its value, ARGV[4i] ms to keep the hash (at least). Returns one reply
 * per offer: 0 duplicate, 2 duplicate whose side still waits (its field is in the hash), 1
 * waiting, or what it joined: for a prediction `{label}`, for a
 * label the fields and values of the predictions that waited (`{p:<unit>, value, ...}`, in no
 * order: the client orders them by unit, as Lua's `<` follows the server's locale). A later
 * offer sees what the earlier ones did, as if each were its own call.
 *
 * On a single Redis the same script also writes the due index: one more key after the hashes,
 * KEYS[n+1] the sorted set of waiting sides by deadline, and after the 4n arguments of the
 * offers, 2n more: ARGV[4n+2i-1] offer i's deadline and ARGV[4n+2i] its member in the index.
 * A side that waits (a prediction not joined, a label that is not a duplicate) is added to
 * the index with its hash, atomically. (A cluster client cannot name the index beside a
 * request's key: it adds the members after the script, with ZADD.)
 */
const offerScript = (indexed: boolean) => `
local function keep(key, ms)
  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end
local indexed = ${indexed}
local results, due, offers = {}, {}, #KEYS
if indexed then offers = #KEYS - 1 end
for i = 1, offers do
  local key, side, unit, value, ms = KEYS[i], ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  if side == 'prediction' then
    local found = redis.call('HMGET', key, 'p:' .. unit, 'j:' .. unit, 'label')
    if found[1] then
      results[i] = 2
    elseif found[2] then
      results[i] = 0
    elseif found[3] then
      redis.call('HSET', key, 'j:' .. unit, '1', 'labelled', '1')
      keep(key, ms)
      results[i] = { found[3] }
    else
      redis.call('HSET', key, 'p:' .. unit, value)
      keep(key, ms)
      results[i] = 1
      if indexed then
        due[#due + 1] = ARGV[4 * offers + 2 * i - 1]
        due[#due + 1] = ARGV[4 * offers + 2 * i]
      end
    end
  else
    -- One read of the (small) hash: a label or a joined label makes this one a duplicate.
    local fields = redis.call('HGETALL', key)
    local waiting, values, seen = {}, {}, false
    for f = 1, #fields, 2 do
      local name = fields[f]
      if name == 'label' then
        seen = 2
        break
      elseif name == 'labelled' then
        seen = 0
      elseif string.sub(name, 1, 2) == 'p:' then
        waiting[#waiting + 1] = name
        values[name] = fields[f + 1]
      end
    end
    if seen then
      results[i] = seen
    else
      if #waiting == 0 then
        redis.call('HSET', key, 'label', value)
        results[i] = 1
      else
        local joined, marks = {}, { 'label', value, 'labelled', '1' }
        for w = 1, #waiting do
          joined[2 * w - 1] = waiting[w]
          joined[2 * w] = values[waiting[w]]
          marks[#marks + 1] = 'j:' .. string.sub(waiting[w], 3)
          marks[#marks + 1] = '1'
        end
        redis.call('HDEL', key, unpack(waiting))
        redis.call('HSET', key, unpack(marks))
        results[i] = joined
      end
      keep(key, ms)
      if indexed then
        due[#due + 1] = ARGV[4 * offers + 2 * i - 1]
        due[#due + 1] = ARGV[4 * offers + 2 * i]
      end
    end
  end
end
if #due > 0 then redis.call('ZADD', KEYS[#KEYS], unpack(due)) end
return results
`;

/** Offers per script call at most (a call blocks Redis while it runs). */
const OFFERS_PER_CALL = 500;

/**
 * KEYS[1] the request's hash; ARGV[1] the due side's field (`p:<unit>` or `label`). Removes it;
 * 1 if it counts: a prediction still waiting, or a label that joined no prediction.
 */
const EXPIRE_SCRIPT = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[1] == 'label' and redis.call('HEXISTS', KEYS[1], 'labelled') == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
`;

type OfferReply = 0 | 1 | 2 | string[];

type RedisWithJoin = (Redis | Cluster) & {
  /** `keys` (the hashes, then the due index) then, per hash, side, unit, value and ms to keep, then per hash its deadline and index member. */
  offerSides(keys: number, ...keysThenArgs: string[]): Promise<OfferReply[]>;
  /** The same script for one offer, its key first (a cluster client routes by it, redis/ioredis#2109). */
  offerSide(key: string, side: string, unit: string, value: string, keepMs: string): Promise<OfferReply[]>;
  expireSide(key: string, field: string): Promise<number>;
};

type Pipeline = RedisWithJoin & { exec(): Promise<[Error | null, unknown][] | null> };

/** The values of a label's join reply (`[p:<unit>, value, ...]`), ordered by unit. */
function byUnit(fieldsAndValues: string[]): string[] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < fieldsAndValues.length; i += 2) pairs.push([fieldsAndValues[i]!, fieldsAndValues[i + 1]!]);
  return pairs.sort((a, b) => byteOrder(a[0], b[0])).map(([, value]) => value);
}

export class RedisJoinStore implements JoinStore {
  private readonly client: RedisWithJoin;
  private readonly cluster: boolean;

  /**
   * `target`: a Redis server, or the seed nodes of a Redis Cluster. `keepMs`: how long a
   * request's hash stays after the latest deadline of its sides (joined markers, and a side
   * past its deadline should no sweep run), so that replays and late duplicates are recognised.
   */
  constructor(
    target: RedisTarget,
    private readonly prefix: string,
    private readonly keepMs: number,
  ) {
    this.cluster = target.cluster === true;
    this.client = connectRedis(target, { maxRetriesPerRequest: 2, enableAutoPipelining: this.cluster }) as RedisWithJoin;
    this.client.defineCommand('offerSides', { lua: offerScript(true) });
    this.client.defineCommand('offerSide', { numberOfKeys: 1, lua: offerScript(false) });
    this.client.defineCommand('expireSide', { numberOfKeys: 1, lua: EXPIRE_SCRIPT });
    this.client.on('error', () => {});
  }

  private key(requestId: string): string {
    return `${this.prefix}join:{${requestId}}`;
  }

  /**
   * The index of waiting sides by deadline: one sorted set (one slot; no script names it with
   * a request's key), members `[field, request id]` as JSON.
   */
  private get dueKey(): string {
    return `${this.prefix}join-due`;
  }

  /**
   * One reply array per script call, or its error: a pipeline of calls of up to 500 offers, or
   * on a cluster one call per offer (each call answers for its offers whatever the others do).
   */
  private async send(offers: Offer[]): Promise<(OfferReply[] | { error: unknown })[]> {
    const now = Date.now();
    // PEXPIRE takes whole milliseconds; a time may have a fraction (predicted_at is any number).
    // A side offered past its deadline is kept the keep time from now, so that a sweep still
    // finds and counts it (else a side two windows old got 1 ms and was lost uncounted).
    const keep = (deadline: number) => String(Math.ceil(Math.max(deadline, now) - now + this.keepMs));
    if (this.cluster) {
      const settled = await Promise.allSettled(
        offers.map((o) =>
          this.client.offerSide(this.key(o.requestId), o.side, o.side === 'prediction' ? o.unit : '', o.value, keep(o.deadline)),
        ),
      );
      return settled.map((s) => (s.status === 'fulfilled' ? s.value : { error: s.reason as unknown }));
    }
    const pipeline = this.client.pipeline() as unknown as Pipeline;
    const dueKey = this.dueKey;
    for (let start = 0; start < offers.length; start += OFFERS_PER_CALL) {
      const count = Math.min(OFFERS_PER_CALL, offers.length - start);
      // The hashes and the due index, then 4 arguments per offer, then its deadline and index member.
      const keysThenArgs = new Array<string>(count * 7 + 1);
      for (let i = 0; i < count; i++) {
        const offer = offers[start + i]!;
        keysThenArgs[i] = this.key(offer.requestId);
        const arg = count + 1 + 4 * i;
        const prediction = offer.side === 'prediction';
        keysThenArgs[arg] = offer.side;
        keysThenArgs[arg + 1] = prediction ? offer.unit : '';
        keysThenArgs[arg + 2] = offer.value;
        keysThenArgs[arg + 3] = keep(offer.deadline);
        const indexed = count + 1 + 4 * count + 2 * i;
        keysThenArgs[indexed] = String(offer.deadline);
        keysThenArgs[indexed + 1] = dueMember(prediction ? predictionField(offer.unit) : LABEL_FIELD, offer.requestId);
      }
      keysThenArgs[count] = dueKey;
      void pipeline.offerSides(count + 1, ...keysThenArgs);
    }
    const replies = (await pipeline.exec()) ?? [];
    if (replies.length !== Math.ceil(offers.length / OFFERS_PER_CALL)) throw new Error('label join: the offers got no reply');
    return replies.map(([error, reply]) => (error ? { error } : (reply as OfferReply[])));
  }

  async offer(offers: Offer[]): Promise<OfferResult[]> {
    if (offers.length === 0) return [];
    const results: (OfferResult | null)[] = [];
    const due: (string | number)[] = [];
    let failure: unknown = null;
    const calls = await this.send(offers);
    for (let call = 0; call < calls.length; call++) {
      const reply = calls[call]!;
      if (!Array.isArray(reply)) {
        // The offers of a call that failed: no answer (the script may have applied a part of them).
        failure ??= reply.error;
        const size = this.cluster ? 1 : Math.min(OFFERS_PER_CALL, offers.length - results.length);
        for (let i = 0; i < size; i++) results.push(null);
        continue;
      }
      for (const answer of reply) {
        const offer = offers[results.length]!;
        // A label stays until its deadline, joined or not; a prediction only while it waits.
        // (On a single Redis the script has indexed them already.) On a cluster, a replayed
        // side still waiting is indexed again: the first offer's ZADD may have failed after its
        // script (NX: an entry there keeps its deadline).
        if (this.cluster) {
          if (offer.side === 'label') {
            if (answer !== 0) due.push(offer.deadline, dueMember(LABEL_FIELD, offer.requestId));
          } else if (answer === 1 || answer === 2) {
            due.push(offer.deadline, dueMember(predictionField(offer.unit), offer.requestId));
          }
        }
        if (answer === 0 || answer === 2) {
          results.push(DUPLICATE);
          continue;
        }
        results.push(answer === 1 ? WAITING : { kind: 'joined', others: offer.side === 'label' ? byUnit(answer) : answer });
      }
    }
    if (results.length !== offers.length) throw new Error(`label join: ${offers.length} offers but ${results.length} replies`);
    // The index is written after the sides: a side whose index entry was lost (a crash, a
    // failed ZADD) is offered again on replay, a duplicate then, and indexed again.
    if (due.length > 0) {
      try {
        await this.client.zadd(this.dueKey, 'NX', ...due);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw new OfferError(results, failure);
    return results as OfferResult[];
  }

  async sweep(now: number, limit: number): Promise<SweepResult> {
    const members = await this.client.zrangebyscore(this.dueKey, '-inf', now, 'LIMIT', 0, limit);
    const result: SweepResult = { predictions: 0, labels: 0, taken: members.length };
    if (members.length === 0) return result;
    const sides = members.map((member) => {
      try {
        const [field, requestId] = JSON.parse(member) as [string, string];
        if (typeof field === 'string' && typeof requestId === 'string') return { field, requestId };
      } catch {
        // not of this layout (an index entry written by an older version): dropped
      }
      return null;
    });
    const expire = (side: { field: string; requestId: string }, client: RedisWithJoin) =>
      client.expireSide(this.key(side.requestId), side.field);
    // Each side's reply, or its error: the sides removed are counted even when others failed
    // (removed, they would never be counted again).
    let removed: ({ error: unknown } | unknown)[];
    if (this.cluster) {
      const settled = await Promise.allSettled(sides.map((side) => (side ? expire(side, this.client) : 0)));
      removed = settled.map((s) => (s.status === 'fulfilled' ? s.value : { error: s.reason as unknown }));
    } else {
      const pipeline = this.client.pipeline() as unknown as Pipeline;
      const listed = sides.filter((side) => side !== null);
      for (const side of listed) void expire(side, pipeline);
      const replies = (await pipeline.exec()) ?? [];
      let next = 0;
      removed = sides.map((side) => {
        if (side === null) return 0;
        const [error, reply] = replies[next++] ?? [new Error('label join: no reply for a side of the sweep'), null];
        return error ? { error } : reply;
      });
    }
    let failure: unknown = null;
    const done: string[] = [];
    removed.forEach((reply, i) => {
      if (typeof reply === 'object' && reply !== null && 'error' in reply) {
        failure ??= reply.error;
        return;
      }
      done.push(members[i]!);
      if (reply !== 1) return;
      if (sides[i]!.field === LABEL_FIELD) result.labels++;
      else result.predictions++;
    });
    if (failure !== null) {
      // The sides that failed stay in the index, for the next sweep.
      if (done.length > 0) await this.client.zrem(this.dueKey, ...done).catch(() => {});
      throw new SweepError(result, failure);
    }
    await this.client.zrem(this.dueKey, ...members);
    return result;
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
