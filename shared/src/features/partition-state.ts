/**
 * One entity's feature-group state from one source partition, as the pipeline keeps it in
 * memory (see tile-state.ts for how events update it and state-codec.ts for how it is stored).
 */
import type { ComponentState } from './aggregations.js';

/** One tile: per column, the components of its aggregations. */
export type Tile = Map<string, ComponentState>;

/** One entity's state from one source partition. */
export interface PartitionState {
  /** Tiles by `<tileMs>:<tileStart>`. */
  tiles: Map<string, Tile>;
  newest: number | null;
  /** Recent event ids and their event times. */
  seen: Map<string, number>;
}

export function emptyState(): PartitionState {
  return { tiles: new Map(), newest: null, seen: new Map() };
}

/** A stored field's value: text (the JSON layout, offsets) or bytes (the binary layout). */
export type StoredValue = string | Buffer;

/** An entity's stored hash, field by field. */
export type StoredFields = Record<string, StoredValue>;

/** A stored value as text (offsets are decimal text however they were read). */
export function storedText(value: StoredValue): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

export function malformedState(reason: string): Error {
  return new Error(`stored partition state: ${reason}`);
}
