/**
 * A feature group's state for one entity, as the pipeline keeps it in memory and as the
 * online store holds it. The pipeline owns, per source partition, that partition's share
 * of the entity's tiles (Kafka Streams' keyed state): events update it in the process and
 * it is written to the store as absolute values, so writing the same state twice is
 * harmless. Readers merge the tiles of all partitions and finalize each window.
 *
 * Stored layout of one entity's hash, two fields per source partition `p`:
 *   `s<p>`   the partition's whole state: its tiles, the newest event time applied from it
 *            (freshness) and its recent event ids with their times (duplicate detection),
 *            in the compact encoding below
 *   `_o<p>`  highest source offset included (written by the store)
 * All functions here are pure.
 */
import {
  finalize,
  mergeComponent,
  updateComponent,
  type Component,
  type ComponentState,
  type ComponentValue,
  type Moments,
} from './aggregations.js';
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

/** The last tile key made per tile size: consecutive events mostly fall in the same tiles. */
const lastTileKeys = new Map<number, { start: number; key: string }>();

function tileKey(tileMs: number, start: number): string {
  const last = lastTileKeys.get(tileMs);
  if (last?.start === start) return last.key;
  const key = `${tileMs}:${start}`;
  if (last) {
    last.start = start;
    last.key = key;
  } else lastTileKeys.set(tileMs, { start, key });
  return key;
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
          key = tileKey(tileMs, Math.floor(event.time / tileMs) * tileMs);
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

/** Per tile size, the longest window read from tiles of that size. */
const tileHorizons = new WeakMap<CompiledFeatureGroup, Map<number, number>>();

function tileHorizon(group: CompiledFeatureGroup, tileMs: number): number {
  let horizons = tileHorizons.get(group);
  if (!horizons) {
    horizons = new Map();
    for (const f of group.features) horizons.set(f.tileMs, Math.max(horizons.get(f.tileMs) ?? 0, f.windowMs));
    tileHorizons.set(group, horizons);
  }
  return horizons.get(tileMs) ?? group.maxWindowMs;
}

/**
 * Drops what no read at or after `nowMs` can use: tiles before the longest window read from
 * tiles of their size (a one-minute tile serves a 10-minute window only, not the group's
 * 24 hours), and event ids older than `dedupBefore` (an event that old is rejected as late
 * anyway). Returns the keys of the removed tiles.
 */
export function pruneState(group: CompiledFeatureGroup, state: PartitionState, nowMs: number, dedupBefore: number): string[] {
  const removed: string[] = [];
  for (const key of state.tiles.keys()) {
    const [tileText, startText] = key.split(':');
    const tileMs = Number(tileText);
    if (Number(startText) < windowFirstTile(nowMs, tileHorizon(group, tileMs), tileMs)) removed.push(key);
  }
  for (const key of removed) state.tiles.delete(key);
  for (const [id, time] of state.seen) if (time < dedupBefore) state.seen.delete(id);
  return removed;
}

/**
 * Forgets the event ids older than `dedupBefore` from the oldest seen on, stopping at the
 * first younger one: cheap enough for every flush (ids are kept in arrival order, so this
 * removes almost all that `pruneState` would), it keeps the stored state, which every
 * read parses, from growing with a fast replay.
 */
export function pruneSeen(state: PartitionState, dedupBefore: number): void {
  for (const [id, time] of state.seen) {
    if (time >= dedupBefore) break;
    state.seen.delete(id);
  }
}

// --- encoding -------------------------------------------------------------------------
//
// A partition's share of an entity's state is one field, `s<partition>`, whose value is a
// JSON array of numbers and strings (no nested objects: one JSON.stringify/parse each way):
//
//   [1, newest, <number of event ids>, id, time, id, time, ...,
//    <number of slots>, column, component, column, component, ...,
//    "<tileMs>:<tileStart>", <number of components>, slot, value..., slot, value..., "<tileMs>:...", ...]
//
// `1` is the format version. Slots name each (column, component) pair the tiles hold, once
// per value, and each tile refers to them by index, so the value describes itself (no
// dependence on the group definition). A component's value takes one element (`n`, `s`,
// `mn`, `mx`: a number; `dc`: the sketch's text), two (`lv`: time, value) or three (`mv`:
// count, mean, sum of squared deviations). Numbers keep their exact value (JSON writes the
// shortest text that reads back as the same double).

const STATE_FORMAT = 1;

export const stateField = (partition: number): string => `s${partition}`;
export const progressField = (partition: number): string => `_o${partition}`;

/** Encodes a partition's state as the value of its `s<partition>` field. */
export function encodePartitionState(state: PartitionState): string {
  const out: (number | string | null)[] = [STATE_FORMAT, state.newest, state.seen.size];
  for (const [id, time] of state.seen) out.push(id, time);
  const slotCountAt = out.length;
  out.push(0);
  let slotCount = 0;
  const slots = new Map<string, Partial<Record<Component, number>>>();
  const body: (number | string)[] = [];
  for (const [key, tile] of state.tiles) {
    body.push(key, 0);
    const countAt = body.length - 1;
    let count = 0;
    for (const [column, components] of tile) {
      let columnSlots = slots.get(column);
      if (!columnSlots) {
        columnSlots = {};
        slots.set(column, columnSlots);
      }
      for (const name in components) {
        const component = name as Component;
        const value = components[component]!;
        let slot = columnSlots[component];
        if (slot === undefined) {
          slot = columnSlots[component] = slotCount++;
          out.push(column, component);
        }
        body.push(slot);
        switch (component) {
          case 'dc':
            body.push(encodeSketch(value as DistinctSketch));
            break;
          case 'mv': {
            const m = value as Moments;
            body.push(m.n, m.mean, m.m2);
            break;
          }
          case 'lv': {
            const last = value as { time: number; value: number | string };
            body.push(last.time, last.value);
            break;
          }
          default:
            body.push(value as number);
        }
        count++;
      }
    }
    body[countAt] = count;
  }
  out[slotCountAt] = slotCount;
  for (let i = 0; i < body.length; i++) out.push(body[i]!);
  return JSON.stringify(out);
}

function malformedState(reason: string): Error {
  return new Error(`stored partition state: ${reason}`);
}

/** Decodes the value of an `s<partition>` field (throws on a value this version cannot read). */
/**
 * `skipSketches`: leave the distinct-count sketches out (a reader that needs no distinct
 * count saves their decoding, the costliest part).
 */
export function decodePartitionState(text: string, options: { skipSketches?: boolean } = {}): PartitionState {
  const a = JSON.parse(text) as unknown[];
  if (!Array.isArray(a) || a[0] !== STATE_FORMAT) throw malformedState(`unknown format ${JSON.stringify(Array.isArray(a) ? a[0] : a)}`);
  const state = emptyState();
  state.newest = typeof a[1] === 'number' ? a[1] : null;
  let i = 2;
  const seen = a[i++] as number;
  for (let k = 0; k < seen; k++, i += 2) state.seen.set(a[i] as string, a[i + 1] as number);
  const slotCount = a[i++] as number;
  const columns: string[] = [];
  const components: Component[] = [];
  for (let k = 0; k < slotCount; k++, i += 2) {
    columns.push(a[i] as string);
    components.push(a[i + 1] as Component);
  }
  while (i < a.length) {
    const key = a[i] as string;
    const count = a[i + 1] as number;
    i += 2;
    if (typeof key !== 'string' || typeof count !== 'number') throw malformedState(`expected a tile at element ${i - 2}`);
    const tile: Tile = new Map();
    for (let k = 0; k < count; k++) {
      const slot = a[i++] as number;
      const column = columns[slot];
      const component = components[slot];
      if (column === undefined || component === undefined) throw malformedState(`tile ${key} names slot ${slot} of ${slotCount}`);
      let columnState = tile.get(column);
      if (!columnState) {
        columnState = {};
        tile.set(column, columnState);
      }
      switch (component) {
        case 'dc':
          if (options.skipSketches) i++;
          else columnState.dc = decodeSketch(a[i++] as string);
          break;
        case 'mv':
          columnState.mv = { n: a[i] as number, mean: a[i + 1] as number, m2: a[i + 2] as number };
          i += 3;
          break;
        case 'lv':
          columnState.lv = { time: a[i] as number, value: a[i + 1] as number | string };
          i += 2;
          break;
        default:
          columnState[component] = a[i++] as number;
      }
    }
    state.tiles.set(key, tile);
  }
  return state;
}

/** The stored fields for a partition's state (the whole state, in one field). */
export function stateFields(partition: number, state: PartitionState): Record<string, string> {
  return { [stateField(partition)]: encodePartitionState(state) };
}

const STATE_FIELD = /^s(\d+)$/;

/** A partition's state from the entity's stored fields (the other partitions' are ignored). */
export function parsePartitionState(partition: number, fields: Record<string, string> | null): PartitionState {
  const value = fields?.[stateField(partition)];
  return value === undefined ? emptyState() : decodePartitionState(value);
}

// --- reading --------------------------------------------------------------------------

export interface FeatureValues {
  values: Record<string, number | string | null>;
  /** Event time of the newest event applied, or null when the entity has no state. */
  newestEventTime: number | null;
}

/**
 * Merges, as of `nowMs`, the tiles of every window from every partition and finalizes each
 * feature; with `only`, just those features (the others are left out of `values`).
 */
export function readFeatureValues(
  group: CompiledFeatureGroup,
  fields: Record<string, string> | null,
  nowMs: number,
  only?: ReadonlySet<string>,
): FeatureValues {
  const values: Record<string, number | string | null> = {};
  let newest: number | null = null;
  const features = only ? group.features.filter((f) => only.has(f.name)) : group.features;
  const skipSketches = !features.some((f) => f.op === 'distinct_count');
  const tiles: { partition: string; tileMs: number; start: number; tile: Tile }[] = [];
  for (const field in fields ?? {}) {
    const match = STATE_FIELD.exec(field);
    if (!match) continue;
    const state = decodePartitionState(fields![field]!, { skipSketches });
    if (state.newest !== null) newest = Math.max(newest ?? -Infinity, state.newest);
    for (const [key, tile] of state.tiles) {
      const colon = key.indexOf(':');
      tiles.push({ partition: match[1]!, tileMs: Number(key.slice(0, colon)), start: Number(key.slice(colon + 1)), tile });
    }
  }
  if (newest === null) {
    for (const feature of features) values[feature.name] = null;
    return { values, newestEventTime: null };
  }
  // In one order (partition, then tile start), so that sums merge alike whichever store returned them.
  tiles.sort((x, y) => (x.partition < y.partition ? -1 : x.partition > y.partition ? 1 : x.tileMs - y.tileMs || x.start - y.start));
  for (const feature of features) {
    const first = windowFirstTile(nowMs, feature.windowMs, feature.tileMs);
    const state: ComponentState = {};
    for (const { tileMs, start, tile } of tiles) {
      if (tileMs !== feature.tileMs || start < first || start > nowMs) continue;
      const columnState = tile.get(feature.column);
      if (!columnState) continue;
      for (const name in columnState) {
        const component = name as Component;
        state[component] = mergeComponent(component, state[component], columnState[component] as ComponentValue);
      }
    }
    values[feature.name] = finalize(feature.op, state);
  }
  return { values, newestEventTime: newest };
}
