import { progressField, storedText } from '../features/tile-state.js';
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

interface Entry {
  fields: Map<string, StoredValue>;
  expiresAt: number;
}

/** How often, at most, a write removes every expired value (reads skip them anyway). */
export const MEMORY_STORE_SWEEP_INTERVAL_MS = 60_000;

/**
 * The embedded online store: same semantics as Redis, held in the process. Expired values are
 * removed when read, and all of them by a write at most once a `MEMORY_STORE_SWEEP_INTERVAL_MS`
 * (as Redis expires keys nobody reads): entities, ids and joins that are never read again do not
 * stay in memory.
 */
export class MemoryOnlineStore implements OnlineStore {
  private readonly entries = new Map<string, Entry>();
  private sweptAt: number;

  constructor(private readonly clock: () => number = Date.now) {
    this.sweptAt = clock();
  }

  /** Values held, by kind, expired ones included until removed. */
  held(): { entities: number; eventIdLogs: number; remembered: number; pairSides: number } {
    return {
      entities: this.entries.size,
      eventIdLogs: this.eventIdLogs.size,
      remembered: this.remembered.size,
      pairSides: this.sides.size,
    };
  }

  /** Removes every expired value, at most once a sweep interval (called by writes: the work is spread over them). */
  private sweep(): void {
    const now = this.clock();
    if (now - this.sweptAt < MEMORY_STORE_SWEEP_INTERVAL_MS) return;
    this.sweptAt = now;
    for (const values of [this.entries, this.eventIdLogs, this.remembered, this.sides] as Map<string, { expiresAt: number }>[]) {
      for (const [key, value] of values) if (value.expiresAt <= now) values.delete(key);
    }
  }

  private id(key: EntityKey): string {
    return `${key.entity}\u0000${key.id}\u0000${key.group}`;
  }

  private entry(key: EntityKey): Entry | undefined {
    const id = this.id(key);
    const entry = this.entries.get(id);
    if (entry && entry.expiresAt <= this.clock()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }

  async write(writes: StateWrite[]): Promise<WriteResult[]> {
    this.sweep();
    return writes.map((write) => {
      const entry = this.entry(write.key) ?? { fields: new Map<string, StoredValue>(), expiresAt: 0 };
      const stored = entry.fields.get(progressField(write.partition));
      if (stored !== undefined && BigInt(storedText(stored)) > BigInt(write.offset))
        return { applied: false, storedOffset: storedText(stored) };
      for (const [field, value] of Object.entries(write.set)) entry.fields.set(field, value);
      for (const field of write.remove) entry.fields.delete(field);
      entry.fields.set(progressField(write.partition), write.offset);
      // Never shortened, as in Redis: an earlier write may have given the key longer.
      entry.expiresAt = Math.max(entry.expiresAt, this.clock() + write.ttlMs);
      this.entries.set(this.id(write.key), entry);
      return { applied: true };
    });
  }

  async read(keys: EntityKey[]): Promise<(StoredFields | null)[]> {
    return keys.map((key) => {
      const entry = this.entry(key);
      return entry ? Object.fromEntries(entry.fields) : null;
    });
  }

  private readonly eventIdLogs = new Map<string, { chunks: Map<string, EventIdChunk>; expiresAt: number }>();

  async writeEventIds(write: EventIdLogWrite): Promise<void> {
    this.sweep();
    const log = this.eventIdLog(write.log) ?? { chunks: new Map<string, EventIdChunk>(), expiresAt: 0 };
    if (write.add) log.chunks.set(write.add.name, { name: write.add.name, ids: write.add.ids.map(([id, time]) => [id, time]) });
    for (const name of write.remove) log.chunks.delete(name);
    log.expiresAt = this.clock() + write.ttlMs;
    this.eventIdLogs.set(write.log, log);
  }

  async readEventIds(name: string): Promise<EventIdChunk[]> {
    return [...(this.eventIdLog(name)?.chunks.values() ?? [])].map((chunk) => ({
      name: chunk.name,
      ids: chunk.ids.map(([id, time]) => [id, time]),
    }));
  }

  private eventIdLog(name: string) {
    const log = this.eventIdLogs.get(name);
    if (log && log.expiresAt <= this.clock()) {
      this.eventIdLogs.delete(name);
      return undefined;
    }
    return log;
  }

  private readonly remembered = new Map<string, { value: string; expiresAt: number }>();

  async remember(entries: RememberedValue[]): Promise<void> {
    this.sweep();
    for (const { key, value, ttlMs } of entries) this.remembered.set(key, { value, expiresAt: this.clock() + ttlMs });
  }

  async recall(keys: string[]): Promise<(string | null)[]> {
    return keys.map((key) => {
      const entry = this.remembered.get(key);
      if (!entry) return null;
      if (entry.expiresAt <= this.clock()) {
        this.remembered.delete(key);
        return null;
      }
      return entry.value;
    });
  }

  async forget(keys: string[]): Promise<void> {
    for (const key of keys) this.remembered.delete(key);
  }

  private readonly sides = new Map<string, { value: string; expiresAt: number }>();

  private sideKey(pair: string, side: string): string {
    return `${pair}\u0000${side}`;
  }

  async meet(sides: PairSide[]): Promise<(string | null)[]> {
    this.sweep();
    return sides.map(({ pair, side, other, value, ttlMs, keep }) => {
      const now = this.clock();
      const found = this.sides.get(this.sideKey(pair, other));
      const otherValue = found && found.expiresAt > now ? found.value : null;
      if (otherValue === null || keep) this.sides.set(this.sideKey(pair, side), { value, expiresAt: now + ttlMs });
      return otherValue;
    });
  }

  async forgetSides(sides: { pair: string; side: string }[]): Promise<void> {
    for (const { pair, side } of sides) this.sides.delete(this.sideKey(pair, side));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.entries.clear();
    this.eventIdLogs.clear();
    this.remembered.clear();
    this.sides.clear();
  }
}
