import { readFileSync } from 'node:fs';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { STORE_ERROR_FIELD } from '../features/feature-read.js';
import { progressField } from '../features/tile-state.js';
import { closeRedis, connectRedis } from '../redis.js';
import type {
  EntityKey,
  EventIdChunk,
  EventIdLogWrite,
  OnlineStore,
  PairSide,
  RememberedValue,
  StateWrite,
  StoredFields,
  StoredValue,
  WriteResult,
} from './types.js';

const WRITE_SCRIPT = readFileSync(new URL('./scripts/writeEntityStates.lua', import.meta.url), 'utf8');
const WRITE_SHARED_SCRIPT = readFileSync(new URL('./scripts/writePartitionStates.lua', import.meta.url), 'utf8');
const READ_SCRIPT = readFileSync(new URL('./scripts/readEntityStates.lua', import.meta.url), 'utf8');
const MEET_SCRIPT = readFileSync(new URL('./scripts/meetPairSide.lua', import.meta.url), 'utf8');
/** Entities per script call: bounds how long one call keeps Redis busy (reads wait meanwhile). */
const ENTITIES_PER_CALL = 100;
/** Keys per read script call at most (a call keeps Redis busy while it runs). */
const KEYS_PER_READ = 1_000;

type RedisWithScripts = (Redis | Cluster) & {
  writeEntityStates(keyCount: number, ...keysAndArgs: StoredValue[]): Promise<(0 | 1 | string)[]>;
  /**
   * The same script for one key, named first: a cluster client's auto-pipelining takes the
   * first argument for the key that routes the call (redis/ioredis#2109).
   */
  writeEntityState(key: string, ...args: StoredValue[]): Promise<(0 | 1 | string)[]>;
  /** Entities of one partition, each one field at one offset: those given once, then a TTL and a value per key. */
  writePartitionStates(keyCount: number, ...keysAndArgs: StoredValue[]): Promise<(0 | 1 | string)[]>;
  /** This side's key first (it routes the call on a cluster), then the other's; value, ttl in ms, '1' to keep. */
  meetPairSide(key: string, other: string, value: string, ttlMs: number, keep: string): Promise<string | null>;
  /** Each key's fields and values (HGETALL), as bytes. */
  readEntityStatesBuffer(keyCount: number, ...keys: string[]): Promise<Buffer[][]>;
};

/** The one field a write sets when it sets one and removes none (a pipeline flush's write), else undefined. */
function soleField(write: StateWrite): string | undefined {
  if (write.remove.length > 0) return undefined;
  let sole: string | undefined;
  for (const name in write.set) {
    if (sole !== undefined) return undefined;
    sole = name;
  }
  return sole;
}

/** Reads asked for in one turn of the event loop, sent together. */
interface PendingRead {
  keys: string[];
  resolve(states: (StoredFields | null)[]): void;
  reject(error: unknown): void;
}

/** A hash's fields from HGETALL's flat reply (field names are ASCII), or null when it is empty. */
/** A read refused because the key holds another type (written by something else) as no value; any other failure as it is. */
function noneIfWrongType(error: unknown): null {
  if (error instanceof Error && error.message.startsWith('WRONGTYPE')) return null;
  throw error;
}

function storedFields(flat: Buffer[]): StoredFields | null {
  if (flat.length === 0) return null;
  const fields: StoredFields = {};
  for (let i = 0; i < flat.length; i += 2) fields[flat[i]!.toString('latin1')] = flat[i + 1]!;
  return fields;
}

export interface RedisOnlineStoreOptions {
  /** A Redis URL, or with `cluster` the seed nodes of a Redis Cluster (comma-separated). */
  url: string;
  cluster?: boolean;
  /** Prefix of every key, e.g. `tributary:`. */
  keyPrefix: string;
  redis?: RedisOptions;
}

/**
 * Redis online store. One hash per (entity, feature group); the `{entity:id}` hash tag keeps
 * all of an entity's groups in one Redis Cluster slot. A batch of writes is one Lua script
 * call for up to ENTITIES_PER_CALL entities, all sent at once (one round trip).
 *
 * On a Redis Cluster a script may only name keys of one slot: each entity is then its own
 * script call, and auto-pipelining sends the calls of a flush to each node at once.
 */
export class RedisOnlineStore implements OnlineStore {
  readonly client: RedisWithScripts;
  /**
   * State writes have their own connection (opened by the first write), so that a large
   * batch of writes does not hold up the reads sent after it on one connection: the pipeline
   * loads entities while its previous flush is being written, and a process that serves
   * reads is not slowed by its writes. No read depends on a write still in flight: the
   * pipeline reads only entities whose writes have completed.
   */
  private writer: RedisWithScripts | null = null;
  /** Reads waiting for the end of this turn of the event loop (a single Redis only). */
  private pendingReads: PendingRead[] = [];

  constructor(private readonly options: RedisOnlineStoreOptions) {
    this.client = this.connect();
  }

  /**
   * A connection. Auto-pipelining only on a cluster, where it gathers each node's commands of a
   * tick (a read is an HGETALL per key there, a write a call per entity). On a single Redis the
   * reads of a turn are already one script call and a flush a few, written one after another
   * without waiting for replies; auto-pipelining first copied them into a pipeline of its own,
   * which cost more. Measured apart, alternating: reads (20 requests a turn, 2 keys of 1 KB
   * each) 9.1-10.5 µs of client CPU per request without it, 14.7-16.0 with it; writes
   * (`bench/profile-processor.ts --flush-every 500`) 20.5-21.0 µs per entity written against
   * 26.4-27.6, process CPU 66.4-67.2 µs per event against 71.5-71.6, Redis CPU 13.5-15.0
   * against 15.4-16.3.
   */
  private connect(): RedisWithScripts {
    const client = connectRedis(
      { url: this.options.url, cluster: this.options.cluster },
      { enableAutoPipelining: Boolean(this.options.cluster), maxRetriesPerRequest: 2, ...this.options.redis },
    ) as RedisWithScripts;
    client.defineCommand('writeEntityStates', { lua: WRITE_SCRIPT });
    client.defineCommand('writeEntityState', { numberOfKeys: 1, lua: WRITE_SCRIPT });
    client.defineCommand('writePartitionStates', { lua: WRITE_SHARED_SCRIPT });
    client.defineCommand('readEntityStates', { lua: READ_SCRIPT });
    client.defineCommand('meetPairSide', { numberOfKeys: 2, lua: MEET_SCRIPT });
    // Connection errors surface on the commands that fail; the client reconnects by itself.
    client.on('error', () => {});
    return client;
  }

  keyOf(key: EntityKey): string {
    return `${this.options.keyPrefix}{${key.entity}:${key.id}}:${key.group}`;
  }

  /**
   * Writes in script calls of up to ENTITIES_PER_CALL entities (one per call on a cluster),
   * all sent in the same tick without waiting for replies, in the order of the writes: one round
   * trip (per node on a cluster). On a single Redis, consecutive writes of one field at one
   * partition's offset, removing nothing (a pipeline flush writes nothing else, partition by
   * partition), go as calls that name the partition, offset and field once and then a TTL and a
   * value per entity (writePartitionStates.lua): 3 arguments per entity instead of 8.
   */
  async write(writes: StateWrite[]): Promise<WriteResult[]> {
    if (writes.length === 0) return [];
    this.writer ??= this.connect();
    const writer = this.writer;
    const cluster = Boolean(this.options.cluster);
    const calls: Promise<(0 | 1 | string)[]>[] = [];
    type Call = { keys: string[]; args: StoredValue[]; shared?: { partition: number; offset: string; field: string } };
    const send = ({ keys, args, shared }: Call) =>
      calls.push(
        shared
          ? writer.writePartitionStates(keys.length, ...keys, ...args)
          : cluster
            ? writer.writeEntityState(keys[0]!, ...args)
            : writer.writeEntityStates(keys.length, ...keys, ...args),
      );
    let call = null as Call | null;
    for (const write of writes) {
      const key = this.keyOf(write.key);
      const field = cluster ? undefined : soleField(write);
      if (field !== undefined) {
        const shared: Call['shared'] = call?.shared;
        if (call && (!shared || shared.partition !== write.partition || shared.offset !== write.offset || shared.field !== field)) {
          send(call);
          call = null;
        }
        call ??= {
          keys: [],
          args: [progressField(write.partition), write.offset, field],
          shared: { partition: write.partition, offset: write.offset, field },
        };
        call.keys.push(key);
        call.args.push(String(write.ttlMs), write.set[field]!);
      } else {
        if (call?.shared) {
          send(call);
          call = null;
        }
        call ??= { keys: [], args: [] };
        call.keys.push(key);
        const set = Object.entries(write.set);
        call.args.push(progressField(write.partition), write.offset, String(write.ttlMs), String(set.length));
        for (const [name, value] of set) call.args.push(name, value);
        call.args.push(String(write.remove.length), ...write.remove);
      }
      if (cluster || call.keys.length === ENTITIES_PER_CALL) {
        send(call);
        call = null;
      }
    }
    if (call) send(call);
    const results: WriteResult[] = [];
    for (const reply of await Promise.all(calls)) {
      for (const result of reply) {
        results.push(
          result === 1
            ? { applied: true }
            : result === 0
              ? { applied: false, unwritable: 'the key holds a value of another type (written by something else)' }
              : { applied: false, storedOffset: String(result) },
        );
      }
    }
    return results;
  }

  /**
   * The reads asked for in one turn of the event loop (every request parsed in it, or a
   * pipeline batch's entities) leave together, as one script call that returns every hash
   * (up to KEYS_PER_READ keys a call): a command per key cost the client about twice the CPU
   * (its Command, promise and reply object each). Values come back as the bytes Redis holds
   * (no conversion to text: the state is binary, and read in place). On a Redis Cluster the
   * keys lie in different slots: one HGETALL per key there, auto-pipelined.
   */
  async read(keys: EntityKey[]): Promise<(StoredFields | null)[]> {
    if (keys.length === 0) return [];
    const names = keys.map((key) => this.keyOf(key));
    if (this.options.cluster) {
      // As the script on a single Redis: a key HGETALL refuses (not a hash: a foreign value) is unreadable alone.
      const replies = await Promise.all(
        names.map((name) =>
          this.client.hgetallBuffer(name).catch((error: unknown) => {
            if (!(error instanceof Error) || !error.message.startsWith('WRONGTYPE')) throw error;
            return { [STORE_ERROR_FIELD]: Buffer.from(error.message) };
          }),
        ),
      );
      return replies.map((fields) => (Object.keys(fields).length === 0 ? null : fields));
    }
    return new Promise((resolve, reject) => {
      if (this.pendingReads.length === 0) setImmediate(() => this.sendReads());
      this.pendingReads.push({ keys: names, resolve, reject });
    });
  }

  private sendReads(): void {
    const reads = this.pendingReads;
    this.pendingReads = [];
    const keys = reads.flatMap((read) => read.keys);
    const calls: Promise<Buffer[][]>[] = [];
    for (let from = 0; from < keys.length; from += KEYS_PER_READ) {
      const chunk = keys.slice(from, from + KEYS_PER_READ);
      calls.push(this.client.readEntityStatesBuffer(chunk.length, ...chunk));
    }
    // A reply that cannot be sliced fails the reads too (none is left waiting forever).
    Promise.all(calls)
      .then((replies) => {
        const states = replies.flat();
        let at = 0;
        for (const read of reads) {
          read.resolve(states.slice(at, at + read.keys.length).map(storedFields));
          at += read.keys.length;
        }
      })
      .catch((error: unknown) => {
        for (const read of reads) read.reject(error);
      });
  }

  /** A partition's event-id log: a hash of chunks, each a JSON array `[ids, times]`. */
  eventIdLogKey(log: string): string {
    return `${this.options.keyPrefix}event-ids:{${log}}`;
  }

  // Sent together on the writes' connection, without waiting for replies: one round trip. The log needs no
  // atomicity: the pipeline writes a chunk after the states it covers and before it commits.
  async writeEventIds(write: EventIdLogWrite): Promise<void> {
    this.writer ??= this.connect();
    const key = this.eventIdLogKey(write.log);
    const commands: Promise<unknown>[] = [];
    if (write.add) {
      const ids = write.add.ids.map(([id]) => id);
      const times = write.add.ids.map(([, time]) => time);
      commands.push(this.writer.hset(key, write.add.name, JSON.stringify([ids, times])));
    }
    if (write.remove.length > 0) commands.push(this.writer.hdel(key, ...write.remove));
    commands.push(this.writer.pexpire(key, write.ttlMs));
    await Promise.all(commands);
  }

  async readEventIds(log: string): Promise<EventIdChunk[]> {
    const chunks = await this.client.hgetall(this.eventIdLogKey(log));
    // A chunk that cannot be read (damaged, or written by something else) is left out: its ids are not known as seen.
    return Object.entries(chunks).flatMap(([name, text]) => {
      let chunk: unknown;
      try {
        chunk = JSON.parse(text);
      } catch {
        return [];
      }
      if (!Array.isArray(chunk) || chunk.length !== 2) return [];
      const [ids, times] = chunk as unknown[];
      if (!Array.isArray(ids) || !Array.isArray(times) || ids.length !== times.length) return [];
      if (!ids.every((id) => typeof id === 'string') || !times.every((time) => Number.isFinite(time))) return [];
      return [{ name, ids: (ids as string[]).map((id, i): [string, number] => [id, times[i] as number]) }];
    });
  }

  private rememberedKey(key: string): string {
    return `${this.options.keyPrefix}kv:{${key}}`;
  }

  // On a cluster one command per key, auto-pipelined (the keys lie in different slots); on a
  // single Redis one command, or one pipeline, for all of them.
  async remember(entries: RememberedValue[]): Promise<void> {
    if (entries.length === 0) return;
    if (this.options.cluster) {
      await Promise.all(entries.map(({ key, value, ttlMs }) => this.client.set(this.rememberedKey(key), value, 'PX', ttlMs)));
      return;
    }
    const pipeline = this.client.pipeline();
    for (const { key, value, ttlMs } of entries) pipeline.set(this.rememberedKey(key), value, 'PX', ttlMs);
    for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  }

  async recall(keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    if (this.options.cluster) {
      // As MGET on a single Redis: a key of another type (written by something else) reads as none.
      return Promise.all(keys.map((key) => this.client.get(this.rememberedKey(key)).catch(noneIfWrongType)));
    }
    return this.client.mget(keys.map((key) => this.rememberedKey(key)));
  }

  async forget(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    if (this.options.cluster) await Promise.all(keys.map((key) => this.client.del(this.rememberedKey(key))));
    else await this.client.del(...keys.map((key) => this.rememberedKey(key)));
  }

  /** Both sides of a pair under one hash tag (`kv:{<pair>}:<side>`): one slot on a cluster, for the script. */
  private sideKey(pair: string, side: string): string {
    return `${this.options.keyPrefix}kv:{${pair}}:${side}`;
  }

  // One script call per side, all sent in one tick (auto-pipelined on a cluster, where each routes by its pair).
  async meet(sides: PairSide[]): Promise<(string | null)[]> {
    return Promise.all(
      sides.map(({ pair, side, other, value, ttlMs, keep }) =>
        this.client.meetPairSide(this.sideKey(pair, side), this.sideKey(pair, other), value, ttlMs, keep ? '1' : '0'),
      ),
    );
  }

  async forgetSides(sides: { pair: string; side: string }[]): Promise<void> {
    if (sides.length === 0) return;
    const keys = sides.map(({ pair, side }) => this.sideKey(pair, side));
    if (this.options.cluster) await Promise.all(keys.map((key) => this.client.del(key)));
    else await this.client.del(...keys);
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    const clients = this.writer ? [this.client, this.writer] : [this.client];
    await Promise.all(clients.map(closeRedis));
  }
}
