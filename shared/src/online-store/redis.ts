import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { EntityKey, EntityWrite, OnlineStore, ProgressKey, WriteResult } from './types.js';
import { progressField } from './types.js';

const APPLY_SCRIPT = readFileSync(new URL('./scripts/applyEntityWrite-1.lua', import.meta.url), 'utf8');
const MERGE_CODE = { add: 'a', min: 'n', max: 'x', last: 'l', moments: 'v' } as const;

type ScriptResult = [0 | 1, string | null];

interface RedisWithScripts extends Redis {
  applyEntityWrite(key: string, ...args: (string | number)[]): Promise<ScriptResult>;
}

export interface RedisOnlineStoreOptions {
  url: string;
  /** Prefix of every key, e.g. `tributary:`. */
  keyPrefix: string;
  redis?: RedisOptions;
}

/**
 * Redis online store. One hash per (entity, feature group); the `{entity:id}` hash tag keeps
 * all of an entity's groups in one Redis Cluster slot. Writes are one Lua script call per
 * entity, all of a batch sent in one pipeline (one round trip).
 */
export class RedisOnlineStore implements OnlineStore {
  readonly client: RedisWithScripts;

  constructor(private readonly options: RedisOnlineStoreOptions) {
    this.client = new Redis(options.url, {
      lazyConnect: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 2,
      ...options.redis,
    }) as RedisWithScripts;
    this.client.defineCommand('applyEntityWrite', { numberOfKeys: 1, lua: APPLY_SCRIPT });
    // Connection errors surface on the commands that fail; the client reconnects by itself.
    this.client.on('error', () => {});
  }

  keyOf(key: EntityKey): string {
    return `${this.options.keyPrefix}{${key.entity}:${key.id}}:${key.group}`;
  }

  async readProgress(keys: ProgressKey[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const { key, stream } of keys) pipeline.hget(this.keyOf(key), progressField(stream));
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, value]) => {
      if (error) throw error;
      return (value as string | null) ?? null;
    });
  }

  async write(writes: EntityWrite[]): Promise<WriteResult[]> {
    if (writes.length === 0) return [];
    const now = Date.now();
    const pipeline = this.client.pipeline() as unknown as RedisWithScripts & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const write of writes) {
      const args: (string | number)[] = [
        progressField(write.stream),
        write.expectedOffset ?? '',
        write.offset,
        write.newestEventTime,
        write.ttlMs,
        now,
        write.pruneBefore.size,
      ];
      for (const [tileMs, cutoff] of write.pruneBefore) args.push(tileMs, cutoff);
      for (const update of write.updates) args.push(MERGE_CODE[update.merge], update.field, update.value);
      void pipeline.applyEntityWrite(this.keyOf(write.key), ...args);
    }
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, value]) => {
      if (error) throw error;
      const [applied, stored] = value as ScriptResult;
      return applied === 1 ? { applied: true } : { applied: false, storedOffset: stored ?? null };
    });
  }

  async read(keys: EntityKey[]): Promise<(Record<string, string> | null)[]> {
    if (keys.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const key of keys) pipeline.hgetall(this.keyOf(key));
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, value]) => {
      if (error) throw error;
      const fields = value as Record<string, string>;
      return Object.keys(fields).length === 0 ? null : fields;
    });
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
