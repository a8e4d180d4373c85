/**
 * Where predictions wait for their labels and labels for their predictions (labels arrive
 * days later, sometimes before the prediction is logged). A request may have several
 * predictions: the answering version's and each shadow's, one per prediction unit (variant,
 * model and version); its label joins every one of them, whichever comes first. Each side is
 * offered by a record (its identity: for the monitor, the Kafka record's partition and
 * offset); the store answers whether it is now joined, waiting, or a duplicate (another
 * record of a side already there: a unit logged twice, or a second label for one request), or
 * for a second label that names another label than the first, corrected. The first label stays
 * the one joined: the pairs it made may have been observed already.
 * Offers are atomic per request, so each prediction unit is joined exactly once whatever the
 * replays, and what waits survives restarts.
 *
 * The same record offered again (its batch retried after the reply to its offers was lost, or
 * replayed after a restart) is answered as at first: `waiting`, or `joined` with the same
 * others (marked `again`), so that the joins of an offer whose answer never arrived are not
 * lost. What that takes is kept with the sides: a prediction a label joined stays (with its
 * value) for the label's answer, but only for the replay horizon after the join (such replays
 * come within minutes), or until its own deadline if that is sooner: its entry in the due
 * index is moved earlier, and the sweep removes it then without counting it. Past that, or
 * past the deadline of a side it joined, a record offered again is a duplicate. (A prediction
 * that joined a waiting label needs only the label for its answer, kept until the label's
 * deadline anyway.)
 *
 * A label stays until its deadline even once it has joined, so that a prediction logged after
 * it (a shadow scored late) joins too. A side is due at its deadline (event time + join
 * window); `sweep` removes what is due and counts it each exactly once even with several
 * monitors sweeping: a prediction unit that was never joined is an expired prediction, a label
 * is unmatched only if it joined no prediction.
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
import { closeRedis, connectRedis, type RedisTarget } from '@tributary/shared';

export type Side = 'prediction' | 'label';

interface OfferOf<S extends Side> {
  side: S;
  requestId: string;
  /**
   * The record that offers the side, the same each time it is offered (the monitor's: the
   * Kafka record's partition and offset in its topic): offered again, it gets its first answer.
   */
  record: string;
  /** The side's record, kept until its deadline (compact JSON). */
  value: string;
  /** When it stops waiting (epoch ms): its event time plus the join window. */
  deadline: number;
}

/**
 * A prediction names its unit (e.g. `<variant>:<model>:<version>`): the predictions of one
 * request are joined to its label once per unit. A label may name the label itself (`label`,
 * e.g. `1`; the store only compares it): a label of another record that names another one
 * than the request's first label is a correction.
 */
export type Offer = (OfferOf<'prediction'> & { unit: string }) | (OfferOf<'label'> & { label?: string });

/**
 * `joined`: the values of the sides this offer joined, in the order of their units for a label
 * (every prediction waiting for it), the label's for a prediction. `again`: the record was
 * offered before, and these are the joins its first offer made (the caller may have observed
 * them then, or never got that answer).
 */
export type OfferResult =
  | { kind: 'waiting' }
  | { kind: 'duplicate' }
  | { kind: 'corrected' }
  /** The request's key in the store holds something else (written by something else): nothing was kept or joined. */
  | { kind: 'unusable' }
  | { kind: 'joined'; others: string[]; again?: true };

export interface SweepResult {
  predictions: number;
  labels: number;
  /** Sides taken off the due index (those counted and those that no longer count): `limit` when more may be due. */
  taken: number;
}

/**
 * Offers that failed in part: `results` holds the answers of the offers that were applied
 * (null for the others, some of which may have been applied without an answer). Offered
 * again, each record gets its first answer: the batch can be retried as a whole.
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
   * Removes and counts the sides whose deadline is at or before `now` (at most `limit`).
   * Fails with a SweepError counting what it removed when some sides could not be.
   */
  sweep(now: number, limit: number): Promise<SweepResult>;
  /** Resolves when the store answers (for `/readyz`). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const DUPLICATE: OfferResult = Object.freeze({ kind: 'duplicate' });
const WAITING: OfferResult = Object.freeze({ kind: 'waiting' });
const CORRECTED: OfferResult = Object.freeze({ kind: 'corrected' });
const UNUSABLE: OfferResult = Object.freeze({ kind: 'unusable' });

/** A side as kept: the record that offered it, and its value. */
interface Kept {
  record: string;
  value: string;
}

/** A side's entry in the due index. */
interface Due {
  deadline: number;
  field: string;
  requestId: string;
}

/** A prediction as kept, with its entry in the due index (moved earlier once the label joins it). */
interface KeptPrediction extends Kept {
  due: Due;
}

/** A request's state: the Redis hash's fields, as the Redis store keeps them. */
interface Entry {
  /**
   * Predictions by unit, waiting or joined by the label's offer, until their deadline or the
   * replay horizon after the join (fields `p:<unit>`).
   */
  predictions: Map<string, KeptPrediction>;
  /**
   * Units joined (fields `j:<unit>`): to the record of the prediction whose offer joined the
   * label, or null when the label's offer joined the prediction.
   */
  joined: Map<string, string | null>;
  /** The label, until its deadline (field `label`). */
  label?: Kept;
  /** Whether the label joined a prediction (field `labelled`): kept after the label's deadline. */
  labelled: boolean;
  /** What the first label named (field `class`), while it is kept or `labelled`. */
  firstLabel?: string;
  /** When the entry itself is forgotten (the latest deadline of its sides plus the keep time). */
  forgetAt: number;
}

/** A side in the due index: a prediction unit's field `p:<unit>`, or `label`. */
const predictionField = (unit: string) => `p:${unit}`;
const LABEL_FIELD = 'label';
/**
 * A side's member in the due index: `[field, request id]` as JSON. (The offers' script makes a
 * joined prediction's member from its label's: `["label",` then the request id's JSON.)
 */
const dueMember = (field: string, requestId: string) => JSON.stringify([field, requestId]);

/** The in-memory store (the embedded default), with the Redis store's semantics. */
export class MemoryJoinStore implements JoinStore {
  private readonly entries = new Map<string, Entry>();
  private readonly due: Due[] = [];
  /** When each request may be forgotten (its entry's `forgetAt` when set): `sweep` drops what is past, as Redis expires a hash. */
  private readonly forgets: { at: number; requestId: string }[] = [];

  /**
   * `keepMs`: how long a request is remembered after the latest deadline of its sides.
   * `replayHorizonMs`: how long a prediction a label joined is kept for the label's answer.
   */
  constructor(
    private readonly keepMs: number,
    private readonly replayHorizonMs: number,
  ) {}

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
    const replayHorizon = Date.now() + this.replayHorizonMs;
    return offers.map((offer) => {
      const { requestId, record, value, deadline } = offer;
      let entry = this.entries.get(requestId);
      if (entry && entry.forgetAt <= Date.now()) {
        this.entries.delete(requestId);
        entry = undefined;
      }
      if (entry === undefined) {
        entry = { predictions: new Map(), joined: new Map(), labelled: false, forgetAt: 0 };
        this.entries.set(requestId, entry);
      }
      if (offer.side === 'prediction') {
        const { unit } = offer;
        const kept = entry.predictions.get(unit);
        // Kept, it waited when first offered (the label, if any, joined it since).
        if (kept !== undefined) return kept.record === record ? WAITING : DUPLICATE;
        if (entry.joined.has(unit)) {
          return entry.joined.get(unit) === record && entry.label !== undefined ? again([entry.label.value]) : DUPLICATE;
        }
        this.keep(entry, requestId, deadline);
        if (entry.label !== undefined) {
          entry.joined.set(unit, record);
          entry.labelled = true;
          return { kind: 'joined', others: [entry.label.value] };
        }
        const due = { deadline, field: predictionField(unit), requestId };
        entry.predictions.set(unit, { record, value, due });
        this.due.push(due);
        return WAITING;
      }
      const second = () =>
        offer.label !== undefined && entry.firstLabel !== undefined && offer.label !== entry.firstLabel ? CORRECTED : DUPLICATE;
      if (entry.label !== undefined) {
        if (entry.label.record !== record) return second();
        // The same label: the predictions its offer joined, those still kept.
        const units = [...entry.joined].filter(([, by]) => by === null).map(([unit]) => unit);
        if (units.length === 0) return WAITING;
        const kept = units.filter((unit) => entry.predictions.has(unit)).sort(byteOrder);
        return kept.length === 0 ? DUPLICATE : again(kept.map((unit) => entry.predictions.get(unit)!.value));
      }
      if (entry.labelled) return second();
      this.keep(entry, requestId, deadline);
      entry.label = { record, value };
      entry.firstLabel = offer.label;
      this.due.push({ deadline, field: LABEL_FIELD, requestId });
      const units = [...entry.predictions.keys()].filter((unit) => !entry.joined.has(unit)).sort(byteOrder);
      if (units.length === 0) return WAITING;
      entry.labelled = true;
      return {
        kind: 'joined',
        others: units.map((unit) => {
          entry.joined.set(unit, null);
          // Kept for the label's answer within the replay horizon only (as Redis's ZADD LT).
          const kept = entry.predictions.get(unit)!;
          kept.due.deadline = Math.min(kept.due.deadline, replayHorizon);
          return kept.value;
        }),
      };
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
        if (!entry.labelled) {
          result.labels++;
          entry.firstLabel = undefined;
        }
      } else {
        const unit = field.slice(2);
        if (entry.predictions.delete(unit) && !entry.joined.has(unit)) result.predictions++;
      }
      if (entry.predictions.size === 0 && entry.joined.size === 0 && entry.label === undefined && !entry.labelled) {
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

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}

/** The answer to a record offered again that joined `others` when first offered. */
function again(others: string[]): OfferResult {
  return { kind: 'joined', others, again: true };
}

/** The order of the predictions a label joins: by unit (the same in both stores). */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Sets a hash's fields and values (`{field, value, ...}`) in chunks: Lua's unpack takes 8,000
 * values at most, and one request may have more prediction units than half that (its label
 * marks each one joined).
 */
const HSET_IN_CHUNKS = String.raw`
local function hsetInChunks(key, fieldsAndValues)
  for f = 1, #fieldsAndValues, 1000 do
    redis.call('HSET', key, unpack(fieldsAndValues, f, math.min(f + 999, #fieldsAndValues)))
  end
end`;

/**
 * Offers a batch of sides, in order, in one script call. KEYS[i]: the hash `{rid}` of offer
 * i's request, with fields `p:<unit>` (a prediction, waiting until its deadline, or joined by
 * the label's offer, until the replay horizon), `j:<unit>` (a unit joined: `l` when the
 * label's offer joined it, else `p<record>`, the record of the prediction whose offer joined
 * the label), `label` (the label, until its deadline), `labelled` (the label joined a
 * prediction) and `class` (what the label named, kept with `labelled`). A kept side's value is
 * led by its record's tag, `<length>:<record>` (a side kept by the previous version has none:
 * its JSON starts with `{`, and no record is its own). ARGV[5i-4] offer i's side
 * (`prediction` or `label`), ARGV[5i-3] its unit (for a label, what it names; may be empty), ARGV[5i-2] its record,
 * ARGV[5i-1] its value, ARGV[5i] ms to keep the hash (at least). Returns one reply per offer:
 * 0 duplicate, 2 duplicate whose side is still kept (its field is in the hash), 3 a label of
 * another record that names another than the first label's `class` (a correction), 4 the key
 * holds a value of another type (written by something else; left as it is), 1 waiting, or
 * what it joined: for a prediction `{label}`, for a label the fields and values of the
 * predictions that waited (`{p:<unit>, value, ...}`, in no order: the client orders them by
 * unit, as Lua's `<` follows the server's locale), led by a 1 when the record was offered
 * before and this is what its first offer joined. A later offer sees what the earlier ones
 * did, as if each were its own call.
 *
 * On a single Redis the same script also writes the due index: one more key after the hashes,
 * KEYS[n+1] the sorted set of waiting sides by deadline, and after the 5n arguments of the
 * offers, 2n + 1 more: ARGV[5n+2i-1] offer i's deadline and ARGV[5n+2i] its member in the
 * index, then ARGV[7n+1] the replay horizon (epoch ms: now plus how long a prediction a label
 * joined is kept for the label's answer). A side that waits (a prediction not joined, a label
 * that is not a duplicate) is added to the index with its hash, atomically; a prediction the
 * label's offer joins is moved in the index to the replay horizon, if that is sooner than its
 * deadline (ZADD LT, after the sides are added: one may have waited in this same call). Its
 * member is made from the label's (`["label",<request id>]`): JSON-escaped as JSON.stringify
 * does, so that it names the entry the prediction's offer added. (A cluster client cannot name
 * the index beside a request's key: it adds and moves the members after the script, with ZADD.)
 */
const offerScript = (indexed: boolean) => String.raw`
${HSET_IN_CHUNKS}
local function keep(key, ms)
  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end
-- A kept side's value without its record's tag.
local function valueOf(kept)
  local digits = string.match(kept, '^(%d+):')
  if not digits then return kept end
  return string.sub(kept, #digits + 2 + tonumber(digits))
end
-- A string as JSON.stringify writes it (it escapes these bytes only).
local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function jsonString(text)
  local escaped = string.gsub(text, '[%z\1-\31"\\]', function(c) return escapes[c] or string.format('\\u%04x', string.byte(c)) end)
  return '"' .. escaped .. '"'
end
local indexed = ${indexed}
local results, due, moved, offers = {}, {}, {}, #KEYS
if indexed then offers = #KEYS - 1 end
local replayHorizon = ARGV[7 * offers + 1]
for i = 1, offers do
  local key, side, unit, record, value, ms = KEYS[i], ARGV[5 * i - 4], ARGV[5 * i - 3], ARGV[5 * i - 2], ARGV[5 * i - 1], ARGV[5 * i]
  local tag = #record .. ':' .. record
  -- A key of another type (written by something else): the offer is answered 4 and nothing is written.
  local found = side == 'prediction' and redis.pcall('HMGET', key, 'p:' .. unit, 'j:' .. unit, 'label') or redis.pcall('HGETALL', key)
  if found.err then
    results[i] = 4
  elseif side == 'prediction' then
    if found[1] then
      -- Kept, it waited when first offered (the label, if any, joined it since).
      if string.sub(found[1], 1, #tag) == tag then results[i] = 1 else results[i] = 2 end
    elseif found[2] then
      if found[3] and found[2] == 'p' .. record then results[i] = { 1, valueOf(found[3]) } else results[i] = 0 end
    elseif found[3] then
      redis.call('HSET', key, 'j:' .. unit, 'p' .. record, 'labelled', '1')
      keep(key, ms)
      results[i] = { valueOf(found[3]) }
    else
      redis.call('HSET', key, 'p:' .. unit, tag .. value)
      keep(key, ms)
      results[i] = 1
      if indexed then
        due[#due + 1] = ARGV[5 * offers + 2 * i - 1]
        due[#due + 1] = ARGV[5 * offers + 2 * i]
      end
    end
  else
    -- One read of the (small) hash: the label, the predictions and which of them are joined.
    local fields = found
    local label, labelled, first, predictions, values, joined = nil, false, nil, {}, {}, {}
    for f = 1, #fields, 2 do
      local name = fields[f]
      if name == 'label' then
        label = fields[f + 1]
      elseif name == 'labelled' then
        labelled = true
      elseif name == 'class' then
        first = fields[f + 1]
      else
        local kind = string.sub(name, 1, 2)
        if kind == 'p:' then
          predictions[#predictions + 1] = name
          values[name] = fields[f + 1]
        elseif kind == 'j:' then
          joined['p:' .. string.sub(name, 3)] = fields[f + 1]
        end
      end
    end
    -- A label of another record: a correction when it names another than the first, else a duplicate.
    local corrected = first ~= nil and unit ~= '' and unit ~= first
    if label then
      if string.sub(label, 1, #tag) ~= tag then
        if corrected then results[i] = 3 else results[i] = 2 end
      else
        -- The same label: the predictions its offer joined, those still kept.
        local again, joinedAny = { 1 }, false
        for _, by in pairs(joined) do
          if by == 'l' then joinedAny = true end
        end
        for p = 1, #predictions do
          if joined[predictions[p]] == 'l' then
            again[#again + 1] = predictions[p]
            again[#again + 1] = valueOf(values[predictions[p]])
          end
        end
        if #again > 1 then
          results[i] = again
        elseif joinedAny then
          results[i] = 2
        else
          results[i] = 1
        end
      end
    elseif labelled then
      if corrected then results[i] = 3 else results[i] = 0 end
    else
      local reply, marks = {}, { 'label', tag .. value }
      if unit ~= '' then
        marks[#marks + 1] = 'class'
        marks[#marks + 1] = unit
      end
      for p = 1, #predictions do
        local name = predictions[p]
        if not joined[name] then
          reply[#reply + 1] = name
          reply[#reply + 1] = valueOf(values[name])
          marks[#marks + 1] = 'j:' .. string.sub(name, 3)
          marks[#marks + 1] = 'l'
        end
      end
      if #reply > 0 then
        marks[#marks + 1] = 'labelled'
        marks[#marks + 1] = '1'
        results[i] = reply
        if indexed then
          -- The label's member, '["label",' then the request id's JSON: the predictions' the same.
          local requestId = string.sub(ARGV[5 * offers + 2 * i], 10)
          for r = 1, #reply, 2 do
            moved[#moved + 1] = replayHorizon
            moved[#moved + 1] = '[' .. jsonString(reply[r]) .. ',' .. requestId
          end
        end
      else
        results[i] = 1
      end
      hsetInChunks(key, marks)
      keep(key, ms)
      if indexed then
        due[#due + 1] = ARGV[5 * offers + 2 * i - 1]
        due[#due + 1] = ARGV[5 * offers + 2 * i]
      end
    end
  end
end
if #due > 0 then redis.call('ZADD', KEYS[#KEYS], unpack(due)) end
-- In chunks (as hsetInChunks): a call's labels may join more predictions than unpack takes
-- (500 labels of requests with a champion and 7 shadows).
for m = 1, #moved, 1000 do
  redis.call('ZADD', KEYS[#KEYS], 'LT', unpack(moved, m, math.min(m + 999, #moved)))
end
return results
`;

/** Offers per script call at most (a call blocks Redis while it runs). */
const OFFERS_PER_CALL = 500;

/**
 * KEYS[1] the request's hash; ARGV[1] the due side's field (`p:<unit>` or `label`). Removes it
 * (a label that joined no prediction with its `class`); 1 if it counts: a prediction never
 * joined, or a label that joined no prediction.
 *
 * A hash that held a prediction (a value longer than Redis's `hash-max-listpack-value`, 64
 * bytes by default) is a hashtable, and stays one when the prediction leaves: once none is
 * left, it is written anew, so that what it keeps until it expires (the joined markers, the
 * label) takes a listpack's room, about 200 bytes less. Only a hash of at most 128 fields
 * (Redis's default `hash-max-listpack-entries`; a larger one stays a hashtable anyway): a request
 * with thousands of prediction units is not read whole at each of their sweeps (their square in
 * time), nor written anew in one HSET (more values than Lua's unpack takes).
 */
const EXPIRE_SCRIPT = `
local key, field = KEYS[1], ARGV[1]
if redis.call('HDEL', key, field) == 0 then return 0 end
local counts
if field == 'label' then
  counts = redis.call('HEXISTS', key, 'labelled') == 0
  -- A label that joined nothing goes with what it named: a later label is a first one.
  if counts then redis.call('HDEL', key, 'class') end
else
  counts = redis.call('HEXISTS', key, 'j:' .. string.sub(field, 3)) == 0
end
local size = redis.call('HLEN', key)
if size == 0 then
  redis.call('DEL', key)
elseif field ~= 'label' and size <= 128 and redis.call('OBJECT', 'ENCODING', key) == 'hashtable' then
  local fields = redis.call('HGETALL', key)
  for f = 1, #fields, 2 do
    if string.sub(fields[f], 1, 2) == 'p:' then fields = nil break end
  end
  if fields then
    local ttl = redis.call('PTTL', key)
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(fields))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
end
if counts then return 1 end
return 0
`;

/**
 * Removes from the due index (KEYS[1]) the members (ARGV[2..]) that are still due at ARGV[1]: one
 * offered again since the sweep read it (a side of the same request, stored after the old one
 * expired) has its new deadline, and stays to be swept then. Returns how many were removed.
 */
const REMOVE_DUE_SCRIPT = `
local now = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= now then removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return removed
`;

/** An offer's reply: see `offerScript` (a joined reply led by the number 1 is answered again). */
type OfferReply = 0 | 1 | 2 | 3 | 4 | (string | number)[];

type RedisWithJoin = (Redis | Cluster) & {
  /**
   * `keys` (the hashes, then the due index) then, per hash, side, unit, record, value and ms to
   * keep, then per hash its deadline and index member, then the replay horizon.
   */
  offerSides(keys: number, ...keysThenArgs: string[]): Promise<OfferReply[]>;
  /** The same script for one offer, its key first (a cluster client routes by it, redis/ioredis#2109). */
  offerSide(key: string, side: string, unit: string, record: string, value: string, keepMs: string): Promise<OfferReply[]>;
  expireSide(key: string, field: string): Promise<number>;
  removeDue(key: string, now: string, ...members: string[]): Promise<number>;
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
   * `replayHorizonMs`: how long a prediction a label joined is kept for the label's answer.
   */
  constructor(
    target: RedisTarget,
    private readonly prefix: string,
    private readonly keepMs: number,
    private readonly replayHorizonMs: number,
  ) {
    this.cluster = target.cluster === true;
    this.client = connectRedis(target, { maxRetriesPerRequest: 2, enableAutoPipelining: this.cluster }) as RedisWithJoin;
    this.client.defineCommand('offerSides', { lua: offerScript(true) });
    this.client.defineCommand('offerSide', { numberOfKeys: 1, lua: offerScript(false) });
    this.client.defineCommand('expireSide', { numberOfKeys: 1, lua: EXPIRE_SCRIPT });
    this.client.defineCommand('removeDue', { numberOfKeys: 1, lua: REMOVE_DUE_SCRIPT });
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
  private async send(offers: Offer[], now: number): Promise<(OfferReply[] | { error: unknown })[]> {
    // PEXPIRE takes whole milliseconds; a time may have a fraction (predicted_at is any number).
    // A side offered past its deadline is kept the keep time from now, so that a sweep still
    // finds and counts it (else a side two windows old got 1 ms and was lost uncounted).
    const keep = (deadline: number) => String(Math.ceil(Math.max(deadline, now) - now + this.keepMs));
    // A prediction's unit, or a label's value (the store keeps the first one a request had).
    const unitOrLabel = (o: (typeof offers)[number]) => (o.side === 'prediction' ? o.unit : (o.label ?? ''));
    if (this.cluster) {
      const settled = await Promise.allSettled(
        offers.map((o) => this.client.offerSide(this.key(o.requestId), o.side, unitOrLabel(o), o.record, o.value, keep(o.deadline))),
      );
      return settled.map((s) => (s.status === 'fulfilled' ? s.value : { error: s.reason as unknown }));
    }
    const pipeline = this.client.pipeline() as unknown as Pipeline;
    const dueKey = this.dueKey;
    for (let start = 0; start < offers.length; start += OFFERS_PER_CALL) {
      const count = Math.min(OFFERS_PER_CALL, offers.length - start);
      // The hashes and the due index, then 5 arguments per offer, then its deadline and index
      // member, then the replay horizon.
      const keysThenArgs = new Array<string>(count * 8 + 2);
      for (let i = 0; i < count; i++) {
        const offer = offers[start + i]!;
        keysThenArgs[i] = this.key(offer.requestId);
        const arg = count + 1 + 5 * i;
        const prediction = offer.side === 'prediction';
        keysThenArgs[arg] = offer.side;
        keysThenArgs[arg + 1] = unitOrLabel(offer);
        keysThenArgs[arg + 2] = offer.record;
        keysThenArgs[arg + 3] = offer.value;
        keysThenArgs[arg + 4] = keep(offer.deadline);
        const indexed = count + 1 + 5 * count + 2 * i;
        keysThenArgs[indexed] = String(offer.deadline);
        keysThenArgs[indexed + 1] = dueMember(prediction ? predictionField(offer.unit) : LABEL_FIELD, offer.requestId);
      }
      keysThenArgs[count] = dueKey;
      keysThenArgs[count * 8 + 1] = String(now + this.replayHorizonMs);
      void pipeline.offerSides(count + 1, ...keysThenArgs);
    }
    const replies = (await pipeline.exec()) ?? [];
    if (replies.length !== Math.ceil(offers.length / OFFERS_PER_CALL)) throw new Error('label join: the offers got no reply');
    return replies.map(([error, reply]) => (error ? { error } : (reply as OfferReply[])));
  }

  async offer(offers: Offer[]): Promise<OfferResult[]> {
    if (offers.length === 0) return [];
    const results: (OfferResult | null)[] = [];
    // On a cluster, the index entries to add (NX) and the joined predictions' to move earlier (LT).
    const due: (string | number)[] = [];
    const moved: (string | number)[] = [];
    const now = Date.now();
    let failure: unknown = null;
    const calls = await this.send(offers, now);
    for (let call = 0; call < calls.length; call++) {
      const reply = calls[call]!;
      if (!Array.isArray(reply)) {
        // The offers of a call that failed: no answer (the script may have applied a part of them,
        // or all: a reply lost with the connection); offered again, they get their first answers.
        failure ??= reply.error;
        const size = this.cluster ? 1 : Math.min(OFFERS_PER_CALL, offers.length - results.length);
        for (let i = 0; i < size; i++) results.push(null);
        continue;
      }
      for (const answer of reply) {
        const offer = offers[results.length]!;
        // A side is indexed when it is kept: a label until its deadline, joined or not; a
        // prediction that waited (the label may have joined it since), and once a label's offer
        // joins it only until the replay horizon. (On a single Redis the script has indexed them
        // already.) On a cluster, a side offered again and still kept is indexed again: the first
        // offer's ZADD may have failed after its script (NX: an entry there keeps its deadline;
        // LT: one moved keeps the earlier horizon).
        if (this.cluster) {
          if (offer.side === 'label') {
            // Not for a correction: another record than the label kept, which its own offer indexed.
            if (answer !== 0 && answer !== 3 && answer !== 4) due.push(offer.deadline, dueMember(LABEL_FIELD, offer.requestId));
            if (Array.isArray(answer)) {
              for (let f = typeof answer[0] === 'number' ? 1 : 0; f < answer.length; f += 2) {
                moved.push(now + this.replayHorizonMs, dueMember(answer[f] as string, offer.requestId));
              }
            }
          } else if (answer === 1 || answer === 2) {
            due.push(offer.deadline, dueMember(predictionField(offer.unit), offer.requestId));
          }
        }
        if (answer === 0 || answer === 2) {
          results.push(DUPLICATE);
        } else if (answer === 3) {
          results.push(CORRECTED);
        } else if (answer === 4) {
          results.push(UNUSABLE);
        } else if (answer === 1) {
          results.push(WAITING);
        } else {
          const repeated = typeof answer[0] === 'number';
          const values = (repeated ? answer.slice(1) : answer) as string[];
          const others = offer.side === 'label' ? byUnit(values) : values;
          results.push(repeated ? again(others) : { kind: 'joined', others });
        }
      }
    }
    if (results.length !== offers.length) throw new Error(`label join: ${offers.length} offers but ${results.length} replies`);
    // The index is written after the sides: a side whose index entry was lost (a crash, a
    // failed ZADD) is offered again on replay, and indexed again. The entries are added before
    // any is moved (a prediction may have waited in this batch); auto-pipelining sends both
    // commands at once, in order.
    const writes: Promise<unknown>[] = [];
    if (due.length > 0) writes.push(this.client.zadd(this.dueKey, 'NX', ...due));
    if (moved.length > 0) writes.push(this.client.zadd(this.dueKey, 'LT', ...moved));
    for (const write of await Promise.allSettled(writes)) {
      if (write.status === 'rejected') failure ??= write.reason;
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
      if (done.length > 0) await this.client.removeDue(this.dueKey, String(now), ...done).catch(() => {});
      throw new SweepError(result, failure);
    }
    await this.client.removeDue(this.dueKey, String(now), ...members);
    return result;
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}
