import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { progressField } from '../features/tile-state.js';
import type { EntityKey, OnlineStore, RememberedValue, StateWrite, WriteResult } from './types.js';

const WRITE_SCRIPT = readFileSync(new URL('./scripts/writeEntityStates.lua', import.meta.url), 'utf8');
/** Entities per script call: bounds how long one call keeps Redis busy (reads wait meanwhile). */
const ENTITIES_PER_CALL = 100;

interface RedisWithScripts extends Redis {
  writeEntityStates(keyCount: number, ...keysAndArgs: string[]): Promise<(1 | string)[]>;
}

export interface RedisOnlineStoreOptions {
  url: string;
  /** Prefix of every key, e.g. `tributary:`. */
  keyPrefix: string;
  redis?: RedisOptions;
}

/**
 * Redis online store. One hash per (entity, feature group); the `{entity:id}` hash tag keeps
 * all of an entity's groups in one Redis Cluster slot. A batch of writes is one Lua script
 * call per entity, all sent in one pipeline (one round trip).
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

  constructor(private readonly options: RedisOnlineStoreOptions) {
    this.client = this.connect();
  }

  private connect(): RedisWithScripts {
    const client = new Redis(this.options.url, {
      enableAutoPipelining: true,
      maxRetriesPerRequest: 2,
      ...this.options.redis,
    }) as RedisWithScripts;
    client.defineCommand('writeEntityStates', { lua: WRITE_SCRIPT });
    // Connection errors surface on the commands that fail; the client reconnects by itself.
    client.on('error', () => {});
    return client;
  }

  keyOf(key: EntityKey): string {
    return `${this.options.keyPrefix}{${key.entity}:${key.id}}:${key.group}`;
  }

  /**
   * Writes in script calls of up to ENTITIES_PER_CALL entities, all in one pipeline (one
   * round trip). On a single Redis a call may name keys of any slot; a Redis Cluster
   * deployment would group the calls by hash slot.
   */
  async write(writes: StateWrite[]): Promise<WriteResult[]> {
    if (writes.length === 0) return [];
    this.writer ??= this.connect();
    const pipeline = this.writer.pipeline() as unknown as RedisWithScripts & { exec(): Promise<[Error | null, unknown][] | null> };
    for (let from = 0; from < writes.length; from += ENTITIES_PER_CALL) {
      const chunk = writes.slice(from, from + ENTITIES_PER_CALL);
      const keys: string[] = [];
      const args: string[] = [];
      for (const write of chunk) {
        keys.push(this.keyOf(write.key));
        const set = Object.entries(write.set);
        args.push(progressField(write.partition), write.offset, String(write.ttlMs), String(set.length));
        for (const [field, value] of set) args.push(field, value);
        args.push(String(write.remove.length), ...write.remove);
      }
      void pipeline.writeEntityStates(keys.length, ...keys, ...args);
    }
    const results: WriteResult[] = [];
    for (const [error, value] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      for (const result of value as (1 | string)[])
        results.push(result === 1 ? { applied: true } : { applied: false, storedOffset: String(result) });
    }
    return results;
  }

  /**
   * One HGETALL per key, auto-pipelined: the reads of every request handled in one
   * event-loop turn leave in one write and come back in one read.
   */
  async read(keys: EntityKey[]): Promise<(Record<string, string> | null)[]> {
    if (keys.length === 0) return [];
    const replies = await Promise.all(keys.map((key) => this.client.hgetall(this.keyOf(key))));
    return replies.map((fields) => (Object.keys(fields).length === 0 ? null : fields));
  }

  private rememberedKey(key: string): string {
    return `${this.options.keyPrefix}kv:{${key}}`;
  }

  async remember(entries: RememberedValue[]): Promise<void> {
    if (entries.length === 0) return;
    const pipeline = this.client.pipeline();
    for (const { key, value, ttlMs } of entries) pipeline.set(this.rememberedKey(key), value, 'PX', ttlMs);
    for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  }

  async recall(keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    // One GET per key in a pipeline: the keys lie in different Redis Cluster slots.
    const pipeline = this.client.pipeline();
    for (const key of keys) pipeline.get(this.rememberedKey(key));
    return ((await pipeline.exec()) ?? []).map(([error, value]) => {
      if (error) throw error;
      return (value as string | null) ?? null;
    });
  }

  async forget(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    const pipeline = this.client.pipeline();
    for (const key of keys) pipeline.del(this.rememberedKey(key));
    for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    const clients = this.writer ? [this.client, this.writer] : [this.client];
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
  }
}
