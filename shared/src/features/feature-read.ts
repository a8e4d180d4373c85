/**
 * Reading features from an entity's stored state: the tiles of every source partition that
 * lie inside each window are merged and finalized. A value in the binary layout is read in
 * place: only the tiles inside the windows read are looked into, only the components the
 * features need are taken, and the event ids are never reached. A value in the JSON layout
 * of earlier versions is decoded whole and merged alike, so an entity whose partitions were
 * written by different versions reads the same.
 *
 * Every feature merges its tiles in one order (partition, as text, then tile start), so
 * that sums come out bit-identical whichever store or layout returned them.
 */
import { OP_COMPONENTS, type AggregationOp, type Component, type ComponentValue, type Moments } from './aggregations.js';
import type { CompiledFeatureGroup, FeatureSpec } from './definition.js';
import { decodeSketch, estimateDistinct, mergeSketches, type DistinctSketch } from './distinct-sketch.js';
import { malformedState, type StoredFields, type StoredValue } from './partition-state.js';
import {
  COMPONENT_CODES,
  decodePartitionState,
  HEADER_BYTES,
  isJsonState,
  LAST_NUMBER,
  lastText,
  openBinaryState,
  sketchText,
  TILE_HEADER_BYTES,
  valueBytes,
  type BinaryState,
} from './state-codec.js';
import { windowFirstTile } from './tiles.js';

export interface FeatureValues {
  values: Record<string, number | string | null>;
  /** Event time of the newest event applied, or null when the entity has no state. */
  newestEventTime: number | null;
}

/** One feature's merged value so far. */
interface Merged {
  has: boolean;
  /** count or sum, min, max; for moments: count. */
  x: number;
  /** moments: mean; last: event time. */
  y: number;
  /** moments: sum of squared deviations. */
  z: number;
  last: number | string | null;
  sketch: DistinctSketch | null;
}

const merged = (): Merged => ({ has: false, x: 0, y: 0, z: 0, last: null, sketch: null });

function resetMerged(m: Merged): void {
  m.has = false;
  m.x = m.y = m.z = 0;
  m.last = null;
  m.sketch = null;
}

function mergeNumber(into: Merged, op: AggregationOp, value: number): void {
  if (!into.has) {
    into.has = true;
    into.x = value;
  } else if (op === 'min') into.x = Math.min(into.x, value);
  else if (op === 'max') into.x = Math.max(into.x, value);
  else into.x = into.x + value;
}

/** Chan et al.'s combination, as `mergeMoments` computes it. */
function mergeMomentsInto(into: Merged, n: number, mean: number, m2: number): void {
  if (!into.has) {
    into.has = true;
    into.x = n;
    into.y = mean;
    into.z = m2;
    return;
  }
  const total = into.x + n;
  if (total === 0) {
    into.x = into.y = into.z = 0;
    return;
  }
  const delta = mean - into.y;
  into.z = into.z + m2 + (delta * delta * into.x * n) / total;
  into.y = into.y + (delta * n) / total;
  into.x = total;
}

function mergeLast(into: Merged, time: number, value: number | string): void {
  if (!into.has || time >= into.y) {
    into.has = true;
    into.y = time;
    into.last = value;
  }
}

function mergeSketch(into: Merged, sketch: DistinctSketch): void {
  into.has = true;
  into.sketch = into.sketch ? mergeSketches(into.sketch, sketch) : sketch;
}

/**
 * A feature's value from its merged components; a number past the range of doubles (a sum of
 * values near 1e308 overflows to Infinity) is no value: null, as a missing one.
 */
function finalizeMerged(op: AggregationOp, m: Merged): number | string | null {
  const value = mergedValue(op, m);
  return typeof value === 'number' && !Number.isFinite(value) ? null : value;
}

function mergedValue(op: AggregationOp, m: Merged): number | string | null {
  switch (op) {
    case 'count':
    case 'sum':
      return m.has ? m.x : 0;
    case 'min':
    case 'max':
      return m.has ? m.x : null;
    case 'mean':
      return m.has && m.x > 0 ? m.y : null;
    case 'stddev':
      // A spread past the range of doubles (values near ±1e308) is none, not a clamped 0.
      return m.has && m.x > 0 && Number.isFinite(m.z) ? Math.sqrt(Math.max(0, m.z / m.x)) : null;
    case 'last':
      return m.has ? m.last : null;
    case 'distinct_count':
      return m.sketch ? estimateDistinct(m.sketch) : 0;
  }
}

/** The one component a feature's value is finalized from. */
const componentOf = (feature: FeatureSpec): Component => OP_COMPONENTS[feature.op][0]!;

/** What a read of some features of a group needs, worked out once per (group, feature set). */
interface ReadPlan {
  features: FeatureSpec[];
  components: Component[];
  codes: number[];
  /** Each feature's column as UTF-8, to find its slot without decoding the slot table. */
  columns: Buffer[];
  /** Tile sizes read, and per size the window read from it the longest. */
  tileSizes: number[];
  longest: number[];
  sketches: boolean;
}

const allFeatures = new WeakMap<CompiledFeatureGroup, ReadPlan>();
const someFeatures = new WeakMap<CompiledFeatureGroup, WeakMap<ReadonlySet<string>, ReadPlan>>();

function readPlan(group: CompiledFeatureGroup, only: ReadonlySet<string> | undefined): ReadPlan {
  let plan = only ? someFeatures.get(group)?.get(only) : allFeatures.get(group);
  if (plan) return plan;
  const features = only ? group.features.filter((f) => only.has(f.name)) : group.features;
  const tileSizes: number[] = [];
  const longest: number[] = [];
  for (const f of features) {
    const i = tileSizes.indexOf(f.tileMs);
    if (i < 0) {
      tileSizes.push(f.tileMs);
      longest.push(f.windowMs);
    } else longest[i] = Math.max(longest[i]!, f.windowMs);
  }
  const components = features.map(componentOf);
  plan = {
    features,
    components,
    codes: components.map((c) => COMPONENT_CODES[c]),
    columns: features.map((f) => Buffer.from(f.column, 'utf8')),
    tileSizes,
    longest,
    sketches: features.some((f) => f.op === 'distinct_count'),
  };
  if (!only) allFeatures.set(group, plan);
  else {
    let byFeatures = someFeatures.get(group);
    if (!byFeatures) someFeatures.set(group, (byFeatures = new WeakMap()));
    byFeatures.set(only, plan);
  }
  return plan;
}

/** Whether a field is a partition's state (`s<partition>`). */
function isStateField(field: string): boolean {
  if (field.length < 2 || field.charCodeAt(0) !== 115 /* s */) return false;
  for (let i = 1; i < field.length; i++) {
    const c = field.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Reads the slot table: each slot's component code into `codes`, and into `slots` the slot of
 * each feature's component (-1 when no tile holds it), comparing column names as bytes.
 */
function matchSlots(state: BinaryState, plan: ReadPlan, codes: number[], slots: number[]): void {
  const { bytes, view } = state;
  for (let f = 0; f < plan.features.length; f++) slots[f] = -1;
  let p = state.slotsAt;
  const count = view.getUint16(p, true);
  p += 2;
  for (let s = 0; s < count; s++) {
    const code = view.getUint8(p);
    const length = view.getUint16(p + 1, true);
    const at = p + 3;
    p = at + length;
    if (p > state.idsAt) throw malformedState(`slot ${s} runs past the slot table`);
    codes[s] = code;
    for (let f = 0; f < plan.features.length; f++) {
      const column = plan.columns[f]!;
      if (plan.codes[f] !== code || column.length !== length || slots[f] !== -1) continue;
      let same = true;
      for (let k = 0; k < length && same; k++) same = column[k] === bytes[at + k];
      if (same) slots[f] = s;
    }
  }
}

/**
 * Scratch arrays of a read, reused from read to read (a read runs to its end synchronously):
 * a prediction reads a few states, and fresh arrays for each were a good part of its garbage.
 */
const scratchCodes: number[] = [];
const scratchSlots: number[] = [];
const scratchTiles: number[] = [];
const scratchFirstBySize: number[] = [];
const scratchFirsts: number[] = [];
const scratchMerged: Merged[] = [];
const scratchPartitions: string[] = [];

/** Merges one partition's tiles, stored in the binary layout, into each feature's value. */
function mergeBinary(state: BinaryState, plan: ReadPlan, firsts: number[], nowMs: number, into: Merged[]): void {
  const { view } = state;
  const codes = scratchCodes;
  const slots = scratchSlots;
  codes.length = 0;
  matchSlots(state, plan, codes, slots);
  // The tiles inside some window read, as (size, start, body offset), sorted by size and start.
  const tiles = scratchTiles;
  tiles.length = 0;
  const firstBySize = scratchFirstBySize;
  for (let i = 0; i < plan.tileSizes.length; i++) firstBySize[i] = windowFirstTile(nowMs, plan.longest[i]!, plan.tileSizes[i]!);
  let p = HEADER_BYTES;
  while (p < state.slotsAt) {
    const size = view.getUint32(p, true);
    const start = view.getFloat64(p + 4, true);
    const body = p + TILE_HEADER_BYTES;
    p = body + view.getUint32(p + 12, true);
    const s = plan.tileSizes.indexOf(size);
    if (s < 0 || start > nowMs || start < firstBySize[s]!) continue;
    let at = tiles.length;
    tiles.push(size, start, body);
    // Insertion sort: the tiles are mostly stored in order already.
    while (at > 0 && (tiles[at - 3]! > size || (tiles[at - 3] === size && tiles[at - 2]! > start))) {
      tiles[at] = tiles[at - 3]!;
      tiles[at + 1] = tiles[at - 2]!;
      tiles[at + 2] = tiles[at - 1]!;
      at -= 3;
    }
    tiles[at] = size;
    tiles[at + 1] = start;
    tiles[at + 2] = body;
  }
  if (p !== state.slotsAt) throw malformedState('the tiles run past the slot table');
  for (let f = 0; f < plan.features.length; f++) {
    const slot = slots[f]!;
    if (slot < 0) continue;
    const feature = plan.features[f]!;
    const first = firsts[f]!;
    const m = into[f]!;
    for (let t = 0; t < tiles.length; t += 3) {
      if (tiles[t] !== feature.tileMs || tiles[t + 1]! < first) continue;
      const body = tiles[t + 2]!;
      const count = view.getUint16(body, true);
      let q = body + 2;
      for (let k = 0; k < count; k++) {
        const s = view.getUint16(q, true);
        q += 2;
        if (s !== slot) {
          const code = codes[s];
          if (code === undefined) throw malformedState(`a tile names slot ${s} of ${codes.length}`);
          q += valueBytes(view, code, q);
          continue;
        }
        switch (plan.components[f]) {
          case 'mv':
            mergeMomentsInto(m, view.getFloat64(q, true), view.getFloat64(q + 8, true), view.getFloat64(q + 16, true));
            break;
          case 'lv':
            mergeLast(
              m,
              view.getFloat64(q, true),
              view.getUint8(q + 8) === LAST_NUMBER ? view.getFloat64(q + 9, true) : lastText(state, q),
            );
            break;
          case 'dc':
            mergeSketch(m, decodeSketch(sketchText(state, q)));
            break;
          default:
            mergeNumber(m, feature.op, view.getFloat64(q, true));
        }
        break;
      }
    }
  }
}

/** Merges one partition's tiles, stored in the JSON layout, into each feature's value. */
function mergeJson(value: StoredValue, plan: ReadPlan, firsts: number[], nowMs: number, into: Merged[]): number | null {
  const state = decodePartitionState(value, { skipSketches: !plan.sketches });
  const tiles = [...state.tiles].map(([key, tile]) => {
    const colon = key.indexOf(':');
    return { tileMs: Number(key.slice(0, colon)), start: Number(key.slice(colon + 1)), tile };
  });
  tiles.sort((x, y) => x.tileMs - y.tileMs || x.start - y.start);
  plan.features.forEach((feature, f) => {
    const component = plan.components[f]!;
    for (const { tileMs, start, tile } of tiles) {
      if (tileMs !== feature.tileMs || start < firsts[f]! || start > nowMs) continue;
      const stored: ComponentValue | undefined = tile.get(feature.column)?.[component];
      if (stored === undefined) continue;
      const m = into[f]!;
      if (component === 'mv') {
        const moments = stored as Moments;
        mergeMomentsInto(m, moments.n, moments.mean, moments.m2);
      } else if (component === 'lv') {
        const last = stored as { time: number; value: number | string };
        mergeLast(m, last.time, last.value);
      } else if (component === 'dc') mergeSketch(m, stored as DistinctSketch);
      else mergeNumber(m, feature.op, stored as number);
    }
  });
  return state.newest;
}

/**
 * The field a store's read gives, with its error, for a key it could not read as a state (a
 * Redis key of another type): that entity's groups are unreadable, the other reads stand.
 */
export const STORE_ERROR_FIELD = '\u0000error';

/**
 * Merges, as of `nowMs`, the tiles of every window from every partition and finalizes each
 * feature; with `only`, just those features (the others are left out of `values`). A caller
 * that reads the same features often passes the same set each time (the work of choosing
 * what to read is kept per set).
 */
export function readFeatureValues(
  group: CompiledFeatureGroup,
  fields: StoredFields | null,
  nowMs: number,
  only?: ReadonlySet<string>,
): FeatureValues {
  if (fields !== null && STORE_ERROR_FIELD in fields) throw new Error(`not a feature state: ${String(fields[STORE_ERROR_FIELD])}`);
  const plan = readPlan(group, only);
  const values: Record<string, number | string | null> = {};
  // `s<partition>` fields in the order of their partition's text (the prefix is common).
  const partitions = scratchPartitions;
  partitions.length = 0;
  for (const field in fields ?? {}) if (isStateField(field)) partitions.push(field);
  if (partitions.length > 1) partitions.sort();
  const firsts = scratchFirsts;
  const into = scratchMerged;
  for (let f = 0; f < plan.features.length; f++) {
    const feature = plan.features[f]!;
    firsts[f] = windowFirstTile(nowMs, feature.windowMs, feature.tileMs);
    const m = into[f];
    if (m) resetMerged(m);
    else into[f] = merged();
  }
  let newest: number | null = null;
  for (const partition of partitions) {
    const value = fields![partition]!;
    let partitionNewest: number | null;
    if (isJsonState(value)) partitionNewest = mergeJson(value, plan, firsts, nowMs, into);
    else {
      const state = openBinaryState(value as Buffer);
      partitionNewest = state.newest;
      mergeBinary(state, plan, firsts, nowMs, into);
    }
    if (partitionNewest !== null) newest = Math.max(newest ?? -Infinity, partitionNewest);
  }
  if (newest === null) {
    for (const feature of plan.features) values[feature.name] = null;
    return { values, newestEventTime: null };
  }
  plan.features.forEach((feature, f) => (values[feature.name] = finalizeMerged(feature.op, into[f]!)));
  return { values, newestEventTime: newest };
}
