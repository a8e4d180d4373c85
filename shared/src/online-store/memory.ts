import { applyFieldUpdates, NEWEST_EVENT_FIELD } from '../features/tile-state.js';
import type { EntityKey, EntityWrite, OnlineStore, ProgressKey, WriteResult } from './types.js';
import { progressField } from './types.js';

interface Entry {
  fields: Map<string, string>;
  expiresAt: number;
}

/** The embedded online store: same semantics as Redis, held in the process. */
export class MemoryOnlineStore implements OnlineStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: () => number = Date.now) {}

  private entry(key: EntityKey): Entry | undefined {
    const id = `${key.entity}\u0000${key.id}\u0000${key.group}`;
    const entry = this.entries.get(id);
    if (entry && entry.expiresAt <= this.clock()) {
      this.entries.delete(id);
      return undefined;
    }
    return entry;
  }

  async readProgress(keys: ProgressKey[]): Promise<(string | null)[]> {
    return keys.map(({ key, stream }) => this.entry(key)?.fields.get(progressField(stream)) ?? null);
  }

  async write(writes: EntityWrite[]): Promise<WriteResult[]> {
    return writes.map((write) => {
      const id = `${write.key.entity}\u0000${write.key.id}\u0000${write.key.group}`;
      const entry = this.entry(write.key) ?? { fields: new Map<string, string>(), expiresAt: 0 };
      const stored = entry.fields.get(progressField(write.stream)) ?? null;
      if (stored !== write.expectedOffset) return { applied: false, storedOffset: stored };
      applyFieldUpdates(entry.fields, write.updates);
      entry.fields.set(progressField(write.stream), write.offset);
      const newest = Number(entry.fields.get(NEWEST_EVENT_FIELD) ?? -Infinity);
      if (write.newestEventTime > newest) entry.fields.set(NEWEST_EVENT_FIELD, String(write.newestEventTime));
      for (const field of [...entry.fields.keys()]) {
        if (field.startsWith('_')) continue;
        const [tileText, startText] = field.split(':', 2);
        const cutoff = write.pruneBefore.get(Number(tileText));
        if (cutoff !== undefined && Number(startText) < cutoff) entry.fields.delete(field);
      }
      entry.expiresAt = this.clock() + write.ttlMs;
      this.entries.set(id, entry);
      return { applied: true };
    });
  }

  async read(keys: EntityKey[]): Promise<(Record<string, string> | null)[]> {
    return keys.map((key) => {
      const entry = this.entry(key);
      return entry ? Object.fromEntries(entry.fields) : null;
    });
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.entries.clear();
  }
}
