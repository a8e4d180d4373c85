/**
 * The JSON layout of a partition's state (format 1), which versions before the binary
 * layout (state-codec.ts) wrote into `s<partition>`. It is still read, so that state
 * written by an earlier pipeline serves until the pipeline rewrites it.
 *
 *   [1, newest, <number of event ids>, id, time, id, time, ...,
 *    <number of slots>, column, component, column, component, ...,
 *    "<tileMs>:<tileStart>", <number of components>, slot, value..., slot, value..., "<tileMs>:...", ...]
 *
 * Slots name each (column, component) pair the tiles hold, and each tile refers to them by
 * index. A component's value takes one element (`n`, `s`, `mn`, `mx`: a number; `dc`: the
 * sketch's text), two (`lv`: time, value) or three (`mv`: count, mean, sum of squared
 * deviations). Numbers keep their exact value (JSON writes the shortest text that reads
 * back as the same double).
 */
import { emptyComponents, type Component, type Moments } from './aggregations.js';
import { decodeSketch, encodeSketch, type DistinctSketch } from './distinct-sketch.js';
import { emptyState, malformedState, storedNewest, type PartitionState, type Tile } from './partition-state.js';

export const JSON_STATE_FORMAT = 1;

/** Encodes a partition's state in the JSON layout (what versions before the binary one wrote). */
export function encodeJsonPartitionState(state: PartitionState): string {
  const out: (number | string | null)[] = [JSON_STATE_FORMAT, state.newest, state.seen.size];
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
        const value = components[component];
        if (value === undefined) continue;
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

/**
 * Decodes a value in the JSON layout (throws on a value it cannot read). `skipSketches`:
 * leave the distinct-count sketches out (a reader that needs no distinct count saves their
 * decoding, the costliest part).
 */
export function decodeJsonPartitionState(text: string, options: { skipSketches?: boolean } = {}): PartitionState {
  const a = JSON.parse(text) as unknown[];
  if (!Array.isArray(a) || a[0] !== JSON_STATE_FORMAT)
    throw malformedState(`unknown format ${JSON.stringify(Array.isArray(a) ? a[0] : a)}`);
  const state = emptyState();
  if (a[1] !== null && typeof a[1] !== 'number') throw malformedState(`newest event time ${JSON.stringify(a[1])} is not a number`);
  state.newest = storedNewest(a[1]);
  let i = 2;
  /** A count of pairs read at `i - 1`: a whole number whose pairs the value holds (a stored count is never trusted further). */
  const pairs = (what: string): number => {
    const count = a[i - 1];
    if (!(Number.isSafeInteger(count) && (count as number) >= 0 && i + 2 * (count as number) <= a.length)) {
      throw malformedState(`${what} count ${JSON.stringify(count)} at element ${i - 1} is not one the value holds`);
    }
    return count as number;
  };
  i++;
  const seen = pairs('event-id');
  for (let k = 0; k < seen; k++, i += 2) state.seen.set(a[i] as string, a[i + 1] as number);
  i++;
  const slotCount = pairs('slot');
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
    if (typeof key !== 'string' || !(Number.isSafeInteger(count) && count >= 0 && i + count <= a.length)) {
      throw malformedState(`expected a tile at element ${i - 2}`);
    }
    const tile: Tile = new Map();
    for (let k = 0; k < count; k++) {
      const slot = a[i++] as number;
      const column = columns[slot];
      const component = components[slot];
      if (column === undefined || component === undefined) throw malformedState(`tile ${key} names slot ${slot} of ${slotCount}`);
      let columnState = tile.get(column);
      if (!columnState) {
        columnState = emptyComponents();
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
