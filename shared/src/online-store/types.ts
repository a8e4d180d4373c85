/**
 * The online store: one small interface (Feast's online_write_batch / online_read) with an
 * in-memory and a Redis implementation, both run through one contract test suite.
 *
 * Writes are idempotent: each entity's state records, per source stream (topic partition),
 * the highest source offset applied. A write names the offset it expects to find
 * (compare-and-set); when another writer got there first the write is refused and the
 * pipeline re-reads and drops what is already applied, so replays never double-count.
 */
import type { FieldUpdate } from '../features/tile-state.js';

export interface EntityKey {
  /** Feature group id, `name:v<version>`. */
  group: string;
  /** Entity type, e.g. `user_id`. */
  entity: string;
  id: string;
}

export interface EntityWrite {
  key: EntityKey;
  /** Source stream the updates come from, e.g. `transactions:3`. */
  stream: string;
  /** Offset the writer believes is stored for the stream (null: none). */
  expectedOffset: string | null;
  /** Highest source offset included in the updates. */
  offset: string;
  updates: FieldUpdate[];
  newestEventTime: number;
  ttlMs: number;
  /** Per tile size, tiles starting before this time are no longer read and may be removed. */
  pruneBefore: Map<number, number>;
}

export type WriteResult = { applied: true } | { applied: false; storedOffset: string | null };

export interface ProgressKey {
  key: EntityKey;
  stream: string;
}

export interface OnlineStore {
  /** Highest source offset applied per (entity, stream), null when none. */
  readProgress(keys: ProgressKey[]): Promise<(string | null)[]>;
  /** Applies each write atomically when its expected offset matches. */
  write(writes: EntityWrite[]): Promise<WriteResult[]>;
  /** The stored fields of each entity's group state, null when absent or expired. */
  read(keys: EntityKey[]): Promise<(Record<string, string> | null)[]>;
  /** Resolves when the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function progressField(stream: string): string {
  return `_o:${stream}`;
}
