/**
 * A feature group's state for one entity, as the pipeline keeps it in memory and as the
 * online store holds it. The pipeline owns, per source partition, that partition's share
 * of the entity's tiles (Kafka Streams' keyed state): events update it in the process and
 * it is written to the store as absolute values, so writing the same state twice is
 * harmless. Readers merge the tiles of all partitions and finalize each window.
 *
 * Stored layout of one entity's hash (all of one partition `p`'s fields carry its number):
 *   `<p>|<tileMs>:<tileStart>`  one tile: JSON `{column: {component: value}}`
 *   `_t<p>`                     newest event time applied from the partition (freshness)
 *   `_d<p>`                     recent event ids with their times (duplicate detection)
 *   `_o<p>`                     highest source offset included (written by the store)
 * All functions here are pure.
 */
import { finalize, mergeComponent, updateComponent, type Component, type ComponentState, type ComponentValue } from './aggregations.js';
import type { CompiledFeatureGroup } from './definition.js';
import { decodeSketch, encodeSketch, type DistinctSketch } from './distinct-sketch.js';
import { windowFirstTile } from './tiles.js';

export interface EntityEvent {
  /** Unique event id; an id seen before (within the dedup horizon) is not applied again. */
  id?: string;
  time: number;
  values: Record<string, unknown>;
}

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

function columnValue(event: EntityEvent, column: string): number | string | null {
  if (column === '*') return 1;
  const value = event.values[column];
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string') return value;
  return null;
}

export type ApplyResult = 'applied' | 'duplicate' | 'filtered';

/** Adds one event to the state; returns the keys of the tiles it changed through `changed`. */
export function applyEvent(group: CompiledFeatureGroup, state: PartitionState, event: EntityEvent, changed?: Set<string>): ApplyResult {
  if (!group.accepts(event.values)) return 'filtered';
  if (event.id !== undefined) {
    if (state.seen.has(event.id)) return 'duplicate';
    state.seen.set(event.id, event.time);
  }
  const layout = group.layout;
  for (let t = 0; t < layout.length; t++) {
    const { tileMs, columns } = layout[t]!;
    let key: string | undefined;
    let tile: Tile | undefined;
    for (let c = 0; c < columns.length; c++) {
      const { column, components } = columns[c]!;
      const value = columnValue(event, column);
      if (value === null) continue;
      for (let k = 0; k < components.length; k++) {
        const component = components[k]!;
        // Only `count`, `last` and `distinct_count` take non-numeric values.
        if (component !== 'lv' && component !== 'n' && component !== 'dc' && typeof value !== 'number') continue;
        if (!tile) {
          key = `${tileMs}:${Math.floor(event.time / tileMs) * tileMs}`;
          tile = state.tiles.get(key);
          if (!tile) {
            tile = new Map();
            state.tiles.set(key, tile);
          }
          changed?.add(key);
        }
        let columnState = tile.get(column);
        if (!columnState) {
          columnState = {};
          tile.set(column, columnState);
        }
        updateComponent(columnState, component, value, event.time);
      }
    }
  }
  if (state.newest === null || event.time > state.newest) state.newest = event.time;
  return 'applied';
}

/**
 * Drops what no read at or after `nowMs` can use: tiles before the longest window, and
 * event ids older than `dedupBefore` (an event that old is rejected as late anyway).
 * Returns the keys of the removed tiles.
 */
export function pruneState(group: CompiledFeatureGroup, state: PartitionState, nowMs: number, dedupBefore: number): string[] {
  const removed: string[] = [];
  for (const key of state.tiles.keys()) {
    const [tileText, startText] = key.split(':');
    if (Number(startText) < windowFirstTile(nowMs, group.maxWindowMs, Number(tileText))) removed.push(key);
  }
  for (const key of removed) state.tiles.delete(key);
  for (const [id, time] of state.seen) if (time < dedupBefore) state.seen.delete(id);
  return removed;
}

// --- encoding -------------------------------------------------------------------------

type Encoded = number | string | [number, number, number] | [number, number | string];

function encodeComponent(component: Component, value: ComponentValue): Encoded {
  if (component === 'dc') return encodeSketch(value as DistinctSketch);
  if (component === 'mv') {
    const m = value as { n: number; mean: number; m2: number };
    return [m.n, m.mean, m.m2];
  }
  if (component === 'lv') {
    const last = value as { time: number; value: number | string };
    return [last.time, last.value];
  }
  return value as number;
}

function decodeComponent(component: Component, value: Encoded): ComponentValue {
  if (component === 'dc') return decodeSketch(value as string);
  if (component === 'mv') {
    const [n, mean, m2] = value as [number, number, number];
    return { n, mean, m2 };
  }
  if (component === 'lv') {
    const [time, last] = value as [number, number | string];
    return { time, value: last };
  }
  return value as number;
}

export function encodeTile(tile: Tile): string {
  const out: Record<string, Record<string, Encoded>> = {};
  for (const [column, state] of tile) {
    const encoded: Record<string, Encoded> = {};
    for (const [component, value] of Object.entries(state) as [Component, ComponentValue][])
      encoded[component] = encodeComponent(component, value);
    out[column] = encoded;
  }
  return JSON.stringify(out);
}

export function decodeTile(text: string): Tile {
  const tile: Tile = new Map();
  for (const [column, encoded] of Object.entries(JSON.parse(text) as Record<string, Record<string, Encoded>>)) {
    const state: ComponentState = {};
    for (const [component, value] of Object.entries(encoded) as [Component, Encoded][])
      state[component] = decodeComponent(component, value);
    tile.set(column, state);
  }
  return tile;
}

export const progressField = (partition: number): string => `_o${partition}`;
const newestField = (partition: number): string => `_t${partition}`;
const seenField = (partition: number): string => `_d${partition}`;

/** The stored fields for a partition's state: all tiles, or only the `changed` ones. */
export function stateFields(partition: number, state: PartitionState, changed?: Iterable<string>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const key of changed ?? state.tiles.keys()) {
    const tile = state.tiles.get(key);
    if (tile) fields[`${partition}|${key}`] = encodeTile(tile);
  }
  if (state.newest !== null) fields[newestField(partition)] = String(state.newest);
  fields[seenField(partition)] = JSON.stringify([...state.seen]);
  return fields;
}

export function tileField(partition: number, key: string): string {
  return `${partition}|${key}`;
}

/** A partition's state from the entity's stored fields (the other partitions' are ignored). */
export function parsePartitionState(partition: number, fields: Record<string, string> | null): PartitionState {
  const state = emptyState();
  if (!fields) return state;
  const prefix = `${partition}|`;
  for (const [field, value] of Object.entries(fields)) {
    if (field.startsWith(prefix)) state.tiles.set(field.slice(prefix.length), decodeTile(value));
  }
  const newest = fields[newestField(partition)];
  if (newest !== undefined) state.newest = Number(newest);
  const seen = fields[seenField(partition)];
  if (seen !== undefined) state.seen = new Map(JSON.parse(seen) as [string, number][]);
  return state;
}

// --- reading --------------------------------------------------------------------------

export interface FeatureValues {
  values: Record<string, number | string | null>;
  /** Event time of the newest event applied, or null when the entity has no state. */
  newestEventTime: number | null;
}

/** Merges, as of `nowMs`, the tiles of every window from every partition and finalizes each feature. */
export function readFeatureValues(group: CompiledFeatureGroup, fields: Record<string, string> | null, nowMs: number): FeatureValues {
  const values: Record<string, number | string | null> = {};
  let newest: number | null = null;
  const tiles: { tileMs: number; start: number; tile: Tile }[] = [];
  // In field-name order, so that sums merge in the same order whichever store returned them.
  for (const field of Object.keys(fields ?? {}).sort()) {
    const raw = fields![field]!;
    if (field.startsWith('_t')) newest = Math.max(newest ?? -Infinity, Number(raw));
    const bar = field.indexOf('|');
    if (bar < 0) continue;
    const [tileText, startText] = field.slice(bar + 1).split(':');
    tiles.push({ tileMs: Number(tileText), start: Number(startText), tile: decodeTile(raw) });
  }
  if (newest === null) {
    for (const feature of group.features) values[feature.name] = null;
    return { values, newestEventTime: null };
  }
  for (const feature of group.features) {
    const first = windowFirstTile(nowMs, feature.windowMs, feature.tileMs);
    const state: ComponentState = {};
    for (const { tileMs, start, tile } of tiles) {
      if (tileMs !== feature.tileMs || start < first || start > nowMs) continue;
      const columnState = tile.get(feature.column);
      if (!columnState) continue;
      for (const [component, value] of Object.entries(columnState) as [Component, ComponentValue][]) {
        state[component] = mergeComponent(component, state[component], value);
      }
    }
    values[feature.name] = finalize(feature.op, state);
  }
  return { values, newestEventTime: newest };
}
