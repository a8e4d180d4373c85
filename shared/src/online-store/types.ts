/**
 * The online store: one small interface (Feast's online_write_batch / online_read) with an
 * in-memory and a Redis implementation, both run through one contract test suite.
 *
 * The pipeline writes each entity's state per source partition as absolute values (see
 * features/tile-state.ts), together with the highest source offset it includes. A write
 * whose offset is below the stored one comes from a writer that lost the partition (a
 * zombie after a rebalance) and is refused, so state never goes back in time.
 */
import type { StoredFields, StoredValue } from '../features/partition-state.js';

export type { StoredFields, StoredValue } from '../features/partition-state.js';

export interface EntityKey {
  /** Feature group id, `name:v<version>`. */
  group: string;
  /** Entity type, e.g. `user_id`. */
  entity: string;
  id: string;
}

export interface StateWrite {
  key: EntityKey;
  /** Source partition whose share of the state this is. */
  partition: number;
  /** Highest source offset included in the state (decimal). */
  offset: string;
  /** Fields to set, with their absolute values (text or bytes). */
  set: Record<string, StoredValue>;
  /** Fields to delete (pruned tiles). */
  remove: string[];
  /** The entity's keys expire this long after the write. */
  ttlMs: number;
}

/**
 * A write applied; refused for a higher stored offset (a writer that lost the partition); or
 * refused because the key holds something the store cannot write the state into (a value of
 * another type, written by something else), with the reason.
 */
export type WriteResult = { applied: true } | { applied: false; storedOffset: string } | { applied: false; unwritable: string };

/**
 * Part of a source partition's event-id log (duplicate detection): the ids of the events
 * that one flush of the pipeline made durable, with their event times.
 */
export interface EventIdChunk {
  /** Unique within its log; the pipeline names it after its newest event time and last offset. */
  name: string;
  ids: [id: string, time: number][];
}

export interface EventIdLogWrite {
  /** The log, one per source partition (`<topic>:<partition>`). */
  log: string;
  /** The chunk to add, if any. */
  add: EventIdChunk | null;
  /** Names of the chunks no longer needed. */
  remove: string[];
  /** The log expires this long after the write. */
  ttlMs: number;
}

/** A value kept for a while under a key (e.g. a stream-stream join's pending side). */
export interface RememberedValue {
  key: string;
  value: string;
  ttlMs: number;
}

/** One side of a pair (a stream-stream join's record, waiting for the other side's). */
export interface PairSide {
  /** What both sides share (the join key). */
  pair: string;
  /** This side's name, and the other side's. */
  side: string;
  other: string;
  /** Kept under the pair and side for `ttlMs`. */
  value: string;
  ttlMs: number;
  /** Kept even when the other side is there (else only while it is not). */
  keep?: boolean;
}

export interface OnlineStore {
  /** Applies each write atomically, unless the stored offset of its partition is higher. */
  write(writes: StateWrite[]): Promise<WriteResult[]>;
  /**
   * The stored fields of each entity's group state, null when absent or expired. A value is
   * returned as it was written by the embedded store, as bytes by Redis (`storedText` reads
   * text such as an offset either way).
   */
  read(keys: EntityKey[]): Promise<(StoredFields | null)[]>;
  /** Adds a chunk to a partition's event-id log and removes old ones. */
  writeEventIds(write: EventIdLogWrite): Promise<void>;
  /** Every chunk of a partition's event-id log, in no particular order. */
  readEventIds(log: string): Promise<EventIdChunk[]>;
  /** Keeps values under keys until their ttl. */
  remember(entries: RememberedValue[]): Promise<void>;
  /** The values kept under keys, null where none. */
  recall(keys: string[]): Promise<(string | null)[]>;
  forget(keys: string[]): Promise<void>;
  /**
   * For each side, atomically: the other side's value (null when none), and this side's value
   * kept unless the other was there (see `keep`). Two sides of a pair met at once, by two
   * processes, never both miss each other. Both sides of a pair lie in one Redis Cluster slot.
   */
  meet(sides: PairSide[]): Promise<(string | null)[]>;
  /** Forgets sides of pairs. */
  forgetSides(sides: { pair: string; side: string }[]): Promise<void>;
  /** Resolves when the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
