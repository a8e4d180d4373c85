/**
 * A feature group's state for one entity, as the pipeline keeps it in memory and as the
 * online store holds it. The pipeline owns, per source partition, that partition's share
 * of the entity's tiles (Kafka Streams' keyed state): events update it in the process and
 * it is written to the store as absolute values, so writing the same state twice is
 * harmless. Readers merge the tiles of all partitions and finalize each window
 * (feature-read.ts).
 *
 * Stored layout of one entity's hash, two fields per source partition `p`:
 *   `s<p>`   the partition's state: its tiles and the newest event time applied from it
 *            (freshness), in the binary layout of state-codec.ts (the JSON layout of earlier
 *            versions is still read)
 *   `_o<p>`  highest source offset included (written by the store)
 * Duplicates are not the state's business: the pipeline and the backfill tell them per source
 * partition (services/features/src/watermark.ts) before an event reaches `applyEvent`, which
 * applies every event it is given. A state written by an earlier version may hold its entity's
 * recent event ids; they are decoded into `seen` (the pipeline moves them to its own log).
 * All functions here are pure.
 */
import { emptyComponents, updateComponent } from './aggregations.js';
import type { CompiledFeatureGroup } from './definition.js';
import { emptyState, storedText, type PartitionState, type StoredFields, type Tile } from './partition-state.js';
import { decodePartitionState, encodePartitionState } from './state-codec.js';
import { readTileKey, windowFirstTile } from './tiles.js';

export { emptyState, storedText, type PartitionState, type StoredFields, type StoredValue, type Tile } from './partition-state.js';
export { decodePartitionState, encodePartitionState } from './state-codec.js';
export { decodeJsonPartitionState, encodeJsonPartitionState } from './state-format-json.js';
export { readFeatureValues, type FeatureValues } from './feature-read.js';

export interface EntityEvent {
  time: number;
  values: Record<string, unknown>;
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

export type ApplyResult = 'applied' | 'filtered';

/** Adds one event to the state (unless the group's filter leaves it out). */
export function applyEvent(group: CompiledFeatureGroup, state: PartitionState, event: EntityEvent): ApplyResult {
  if (!group.accepts(event.values)) return 'filtered';
  const layout = group.layout;
  const kept = state.encoded?.tiles;
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
          // Its encoded bytes are out of date: the next encoding writes it anew.
          kept?.delete(key);
        }
        let columnState = tile.get(column);
        if (!columnState) {
          columnState = emptyComponents();
          tile.set(column, columnState);
        }
        updateComponent(columnState, component, value, event.time);
      }
    }
  }
  if (state.newest === null || event.time > state.newest) state.newest = event.time;
  return 'applied';
}

/** Per tile size, the longest window read from tiles of that size: tile sizes and horizons as parallel arrays. */
const tileHorizons = new WeakMap<CompiledFeatureGroup, { sizes: number[]; horizons: number[] }>();

function horizonsOf(group: CompiledFeatureGroup): { sizes: number[]; horizons: number[] } {
  let horizons = tileHorizons.get(group);
  if (!horizons) {
    const bySize = new Map<number, number>();
    for (const f of group.features) bySize.set(f.tileMs, Math.max(bySize.get(f.tileMs) ?? 0, f.windowMs));
    horizons = { sizes: [...bySize.keys()], horizons: [...bySize.values()] };
    tileHorizons.set(group, horizons);
  }
  return horizons;
}

/**
 * How often an entity's state is pruned at most, in the time it is pruned at (reads ignore expired tiles
 * anyway): the pipeline's and the backfill's interval.
 */
export const PRUNE_INTERVAL_MS = 60_000;

/** The first tile start kept per tile size, and the tile key being read (scratch, per call of `pruneState`). */
const firstKept: number[] = [];
const keyParts = { tileMs: 0, start: 0 };

/**
 * Drops what no read at or after `nowMs` can use: tiles before the longest window read from
 * tiles of their size (a one-minute tile serves a 10-minute window only, not the group's
 * 24 hours). Returns the keys of the removed tiles. Tile keys are read in place (the pipeline
 * prunes an entity at most once a minute of its partition's time, which a replay of older
 * events runs through fast).
 */
export function pruneState(group: CompiledFeatureGroup, state: PartitionState, nowMs: number): string[] {
  const removed: string[] = [];
  const { sizes, horizons } = horizonsOf(group);
  for (let i = 0; i < sizes.length; i++) firstKept[i] = windowFirstTile(nowMs, horizons[i]!, sizes[i]!);
  for (const key of state.tiles.keys()) {
    readTileKey(key, keyParts);
    const size = sizes.indexOf(keyParts.tileMs);
    const first = size >= 0 ? firstKept[size]! : windowFirstTile(nowMs, group.maxWindowMs, keyParts.tileMs);
    if (keyParts.start < first) removed.push(key);
  }
  for (const key of removed) state.tiles.delete(key);
  return removed;
}

/**
 * Forgets the event ids older than `dedupBefore` from the oldest seen on, stopping at the
 * first younger one: cheap enough for every flush (ids are kept in arrival order, so this
 * removes almost all that a full pass would), it keeps the ids of a fast replay bounded.
 */
export function pruneSeen(seen: Map<string, number>, dedupBefore: number): void {
  for (const [id, time] of seen) {
    if (time >= dedupBefore) break;
    seen.delete(id);
  }
}

export const stateField = (partition: number): string => `s${partition}`;
export const progressField = (partition: number): string => `_o${partition}`;

/**
 * The stored fields for a partition's state (the whole state but its event ids, in one field).
 * The encoding is kept with the state: the next one copies the tiles no event changed since.
 */
export function stateFields(partition: number, state: PartitionState): Record<string, Buffer> {
  return { [stateField(partition)]: encodePartitionState(state, { eventIds: false, keep: true }) };
}

/** A partition's state from the entity's stored fields (the other partitions' are ignored). */
export function parsePartitionState(partition: number, fields: StoredFields | null): PartitionState {
  const value = fields?.[stateField(partition)];
  return value === undefined ? emptyState() : decodePartitionState(value);
}

/** The highest source offset a partition's stored state includes, or null when none is stored. */
export function storedOffset(partition: number, fields: StoredFields | null): string | null {
  const value = fields?.[progressField(partition)];
  return value === undefined ? null : storedText(value);
}
