/**
 * One entity's feature-group state from one source partition, as the pipeline keeps it in
 * memory (see tile-state.ts for how events update it and state-codec.ts for how it is stored).
 */
import { MAX_EVENT_TIME } from '../records/validation.js';
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
  /** Its last binary encoding, when kept (see `encodePartitionState`). */
  encoded?: EncodedState;
}

/** A binary encoding of a state, kept with it so that the next one re-encodes only the tiles changed since. */
export interface EncodedState {
  /** The encoding, as last written (in a buffer of its own, not a slice of Node's shared pool). */
  bytes: Buffer;
  /** Where each tile's record starts in `bytes`, by tile key; whoever changes a tile deletes it here. */
  tiles: Map<string, number>;
  /** The slot table of `bytes`: the next encoding's starts with it, so that the copied tiles' slot numbers stay right. */
  columns: string[];
  codes: number[];
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

/** A stored newest event time as read (null: none), refused unless it is an event time (epoch ms, 0 to MAX_EVENT_TIME). */
export function storedNewest(value: number | null): number | null {
  if (value === null || (Number.isInteger(value) && value >= 0 && value <= MAX_EVENT_TIME)) return value;
  throw malformedState(`newest event time ${value} is not an event time`);
}
