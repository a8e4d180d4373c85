/**
 * The stored value of a partition's share of an entity's state (the `s<partition>` field):
 * a little-endian binary layout that is written without formatting a number and read
 * without parsing what a read does not need.
 *
 *   0   u8   format (2; the JSON layout of state-format-json.ts begins with `[`, 0x5b)
 *   1   f64  newest event time (NaN: none)
 *   9   u32  byte offset of the slot table
 *   13  u32  byte offset of the event ids
 *   17  the tiles, one after the other:
 *         u32 tile size (ms), f64 tile start, u32 bytes of the tile's body, then the body:
 *         u16 number of components, and per component: u16 slot, its value
 *       the slot table: u16 number of slots, per slot: u8 component code, u16 bytes, column (UTF-8)
 *       the event ids: u32 number of ids, per id: f64 event time, u32 bytes, id (UTF-8); none
 *       in what the pipeline stores now (it keeps them per source partition), read where an
 *       earlier version wrote them
 *
 * A slot names a (column, component) pair once per value; tiles refer to slots by index, so
 * a value describes itself without the group's definition. A component's value is one f64
 * (`n`, `s`, `mn`, `mx`), three (`mv`: count, mean, sum of squared deviations), an f64 event
 * time and a tagged value (`lv`: u8 0 and an f64, or u8 1, u32 bytes and UTF-8 text), or the
 * sketch's text (`dc`: u32 bytes and its base64url characters). Numbers are stored as the
 * doubles they are, so sums stay bit-exact through the store.
 *
 * The tiles come first and each says its size, start and length: a reader skips a tile
 * outside the windows it reads without looking inside it, and never reaches the event ids
 * (duplicate detection is the pipeline's business alone).
 */
import { emptyComponents, type Component, type ComponentState, type ComponentValue, type Moments } from './aggregations.js';
import { decodeSketch, encodedSketchLength, writeSketch, type DistinctSketch } from './distinct-sketch.js';
import {
  emptyState,
  malformedState,
  storedNewest,
  type EncodedState,
  type PartitionState,
  type StoredValue,
  type Tile,
} from './partition-state.js';
import { decodeJsonPartitionState } from './state-format-json.js';
import { readTileKey } from './tiles.js';

export const BINARY_STATE_FORMAT = 2;
/** Bytes before the first tile. */
export const HEADER_BYTES = 17;
/** Bytes of a tile's header (size, start, body length). */
export const TILE_HEADER_BYTES = 16;
const JSON_FIRST_BYTE = 0x5b;

export const COMPONENT_CODES: Readonly<Record<Component, number>> = { n: 0, s: 1, mv: 2, mn: 3, mx: 4, lv: 5, dc: 6 };
export const COMPONENTS_BY_CODE: readonly Component[] = ['n', 's', 'mv', 'mn', 'mx', 'lv', 'dc'];
export const LAST_NUMBER = 0;
export const LAST_TEXT = 1;

// The encoder writes into one growing scratch buffer, then copies out what it wrote.
let out = Buffer.allocUnsafeSlow(16_384);
let view = new DataView(out.buffer, out.byteOffset, out.byteLength);
let pos = 0;

function reserve(bytes: number): void {
  if (pos + bytes <= out.length) return;
  const next = Buffer.allocUnsafeSlow(Math.max(out.length * 2, pos + bytes));
  out.copy(next, 0, 0, pos);
  out = next;
  view = new DataView(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Writes UTF-8 text preceded by its length in bytes (u32, or u16 when `short`). ASCII text,
 * the usual case (column names, countries, currencies), is copied in JavaScript: for a few
 * characters a call into the runtime costs more than the copy.
 */
function writeText(text: string, short: boolean): void {
  const lengthBytes = short ? 2 : 4;
  reserve(lengthBytes + text.length * 3);
  const at = pos + lengthBytes;
  let bytes = 0;
  for (; bytes < text.length; bytes++) {
    const code = text.charCodeAt(bytes);
    if (code >= 0x80) break;
    out[at + bytes] = code;
  }
  if (bytes < text.length) bytes = out.write(text, at, 'utf8');
  if (short) view.setUint16(pos, bytes, true);
  else view.setUint32(pos, bytes, true);
  pos = at + bytes;
}

/** The tile key being written, read into numbers (reused from tile to tile). */
const keyParts = { tileMs: 0, start: 0 };

/** The slots of the value being encoded: column and component code (reused from call to call). */
const slotColumns: string[] = [];
const slotCodes: number[] = [];

function slotOf(column: string, code: number): number {
  for (let s = 0; s < slotColumns.length; s++) if (slotCodes[s] === code && slotColumns[s] === column) return s;
  slotColumns.push(column);
  slotCodes.push(code);
  return slotColumns.length - 1;
}

function writeComponent(column: string, component: Component, value: ComponentValue): void {
  const code = COMPONENT_CODES[component];
  reserve(2 + 25);
  view.setUint16(pos, slotOf(column, code), true);
  pos += 2;
  tileComponents++;
  switch (code) {
    case 6: {
      // dc
      const sketch = value as DistinctSketch;
      const length = encodedSketchLength(sketch);
      reserve(4 + length);
      view.setUint32(pos, length, true);
      pos += 4 + writeSketch(sketch, out, pos + 4);
      return;
    }
    case 2: {
      // mv
      const m = value as Moments;
      view.setFloat64(pos, m.n, true);
      view.setFloat64(pos + 8, m.mean, true);
      view.setFloat64(pos + 16, m.m2, true);
      pos += 24;
      return;
    }
    case 5: {
      // lv
      const last = value as { time: number; value: number | string };
      view.setFloat64(pos, last.time, true);
      if (typeof last.value === 'number') {
        view.setUint8(pos + 8, LAST_NUMBER);
        view.setFloat64(pos + 9, last.value, true);
        pos += 17;
      } else {
        view.setUint8(pos + 8, LAST_TEXT);
        pos += 9;
        writeText(last.value, false);
      }
      return;
    }
    default:
      view.setFloat64(pos, value as number, true);
      pos += 8;
  }
}

/**
 * A column's components, in the order of their codes. Named reads, not `for...in`: the
 * column states take a few shapes, and a keyed walk over them was most of the encoding's time.
 */
function writeColumn(components: ComponentState, column: string): void {
  if (components.n !== undefined) writeComponent(column, 'n', components.n);
  if (components.s !== undefined) writeComponent(column, 's', components.s);
  if (components.mv !== undefined) writeComponent(column, 'mv', components.mv);
  if (components.mn !== undefined) writeComponent(column, 'mn', components.mn);
  if (components.mx !== undefined) writeComponent(column, 'mx', components.mx);
  if (components.lv !== undefined) writeComponent(column, 'lv', components.lv);
  if (components.dc !== undefined) writeComponent(column, 'dc', components.dc);
}

let tileComponents = 0;

function writeTile(tile: Tile, key: string): void {
  readTileKey(key, keyParts);
  reserve(TILE_HEADER_BYTES + 2);
  view.setUint32(pos, keyParts.tileMs, true);
  view.setFloat64(pos + 4, keyParts.start, true);
  const lengthAt = pos + 12;
  const bodyAt = pos + TILE_HEADER_BYTES;
  pos = bodyAt + 2;
  tileComponents = 0;
  tile.forEach(writeColumn);
  view.setUint16(bodyAt, tileComponents, true);
  view.setUint32(lengthAt, pos - bodyAt, true);
}

/**
 * Encodings are kept for values of this many bytes or more. Keeping one costs a little per tile
 * (its place, on every encoding) and saves the encoding of what did not change: for small values
 * (a user's few events, or a merchant's many tiles of counts alone) keeping cost more than it
 * saved (docs/feature-engine.md).
 */
const KEEP_FROM_BYTES = 1_536;

/** The kept encoding being copied from, and the run of its bytes due to be copied next (scratch). */
let copyFrom: EncodedState | undefined;
let runStart = 0;
let runEnd = 0;

/** Copies the pending run of unchanged tiles' records (consecutive in the kept bytes, so mostly one copy). */
function copyRun(): void {
  if (runEnd === runStart) return;
  const length = runEnd - runStart;
  reserve(length);
  copyFrom!.bytes.copy(out, pos, runStart, runEnd);
  pos += length;
  runStart = runEnd;
}

function encodeTile(tile: Tile, key: string): void {
  const kept = copyFrom;
  const from = kept?.tiles.get(key);
  if (from === undefined) {
    copyRun();
    kept?.tiles.set(key, pos);
    writeTile(tile, key);
    return;
  }
  const length = TILE_HEADER_BYTES + kept!.bytes.readUInt32LE(from + 12);
  if (from !== runEnd) {
    copyRun();
    runStart = from;
  }
  runEnd = from + length;
  // Where it will be in the new bytes: after what is written and what is still to copy.
  kept!.tiles.set(key, pos + (from - runStart));
}

/**
 * Encodes a partition's state as the value of its `s<partition>` field. The stored fields
 * leave the event ids out (`eventIds: false`, see `stateFields`): the pipeline keeps them per
 * source partition, so that a hot entity's recent ids are neither rewritten by every flush
 * nor sent to every read.
 *
 * `keep`: the encoding is kept with the state (`state.encoded`), and the next one copies from it
 * the tiles that no event changed since (`applyEvent` forgets a tile's place in it when it changes
 * it), so that a flush encodes what changed rather than the whole state. The slot table grows
 * from the kept one (copied tiles keep their slot numbers); a slot no tile uses any more stays
 * (they are bounded by the group's columns and aggregations). Kept from `KEEP_FROM_BYTES` on.
 */
export function encodePartitionState(state: PartitionState, options: { eventIds?: boolean; keep?: boolean } = {}): Buffer {
  const kept = options.keep ? state.encoded : undefined;
  pos = 0;
  reserve(HEADER_BYTES);
  view.setUint8(0, BINARY_STATE_FORMAT);
  view.setFloat64(1, state.newest ?? NaN, true);
  pos = HEADER_BYTES;
  slotColumns.length = 0;
  slotCodes.length = 0;
  if (kept) {
    for (let s = 0; s < kept.columns.length; s++) {
      slotColumns.push(kept.columns[s]!);
      slotCodes.push(kept.codes[s]!);
    }
  }
  copyFrom = kept;
  runStart = runEnd = 0;
  state.tiles.forEach(encodeTile);
  copyRun();
  copyFrom = undefined;
  // Tiles removed since (pruned) leave the kept places too.
  if (kept && kept.tiles.size > state.tiles.size) for (const key of kept.tiles.keys()) if (!state.tiles.has(key)) kept.tiles.delete(key);
  const slotsAt = pos;
  reserve(2);
  view.setUint16(pos, slotColumns.length, true);
  pos += 2;
  for (let s = 0; s < slotColumns.length; s++) {
    reserve(1);
    view.setUint8(pos++, slotCodes[s]!);
    writeText(slotColumns[s]!, true);
  }
  const idsAt = pos;
  reserve(4);
  const withIds = options.eventIds ?? true;
  view.setUint32(pos, withIds ? state.seen.size : 0, true);
  pos += 4;
  if (withIds)
    for (const [id, time] of state.seen) {
      reserve(8);
      view.setFloat64(pos, time, true);
      pos += 8;
      writeText(id, false);
    }
  view.setUint32(9, slotsAt, true);
  view.setUint32(13, idsAt, true);
  if (!options.keep || pos < KEEP_FROM_BYTES) {
    // Too small now (pruned) to be worth keeping.
    if (kept) state.encoded = undefined;
    const value = Buffer.allocUnsafe(pos);
    out.copy(value, 0, 0, pos);
    return value;
  }
  // A kept value has a buffer of its own: a slice of Node's shared pool would keep the whole pool alive with it.
  const value = Buffer.allocUnsafeSlow(pos);
  out.copy(value, 0, 0, pos);
  if (kept) {
    kept.bytes = value;
    for (let s = kept.columns.length; s < slotColumns.length; s++) {
      kept.columns.push(slotColumns[s]!);
      kept.codes.push(slotCodes[s]!);
    }
  } else {
    const tiles = new Map<string, number>();
    let at = HEADER_BYTES;
    for (const key of state.tiles.keys()) {
      tiles.set(key, at);
      at += TILE_HEADER_BYTES + view.getUint32(at + 12, true);
    }
    state.encoded = { bytes: value, tiles, columns: slotColumns.slice(), codes: slotCodes.slice() };
  }
  return value;
}

/** The parts of a binary value a reader needs, with its bounds checked. */
export interface BinaryState {
  bytes: Buffer;
  view: DataView;
  newest: number | null;
  /** Byte offset of the slot table, where the tiles end. */
  slotsAt: number;
  idsAt: number;
}

export function isJsonState(value: StoredValue): boolean {
  return typeof value === 'string' || value[0] === JSON_FIRST_BYTE;
}

export function openBinaryState(bytes: Buffer): BinaryState {
  if (bytes.length < HEADER_BYTES || bytes[0] !== BINARY_STATE_FORMAT) {
    throw malformedState(`unknown format ${bytes.length === 0 ? 'of an empty value' : bytes[0]}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const newest = view.getFloat64(1, true);
  const slotsAt = view.getUint32(9, true);
  const idsAt = view.getUint32(13, true);
  if (slotsAt < HEADER_BYTES || idsAt < slotsAt + 2 || idsAt + 4 > bytes.length) {
    throw malformedState(`sections at ${slotsAt} and ${idsAt} do not fit in ${bytes.length} bytes`);
  }
  return { bytes, view, newest: storedNewest(Number.isNaN(newest) ? null : newest), slotsAt, idsAt };
}

/** The slot table: each slot's column and component code. */
export function readSlots(state: BinaryState): { columns: string[]; codes: number[] } {
  const { bytes, view } = state;
  let p = state.slotsAt;
  const count = view.getUint16(p, true);
  p += 2;
  const columns: string[] = [];
  const codes: number[] = [];
  for (let s = 0; s < count; s++) {
    const code = view.getUint8(p);
    if (code >= COMPONENTS_BY_CODE.length) throw malformedState(`slot ${s} has component code ${code}`);
    const length = view.getUint16(p + 1, true);
    if (p + 3 + length > state.idsAt) throw malformedState(`slot ${s} runs past the slot table`);
    codes.push(code);
    columns.push(bytes.toString('utf8', p + 3, p + 3 + length));
    p += 3 + length;
  }
  return { columns, codes };
}

/** Bytes taken by a component's value at `p`. */
export function valueBytes(view: DataView, code: number, p: number): number {
  switch (code) {
    case 2: // mv
      return 24;
    case 5: // lv
      return view.getUint8(p + 8) === LAST_NUMBER ? 17 : 13 + view.getUint32(p + 9, true);
    case 6: // dc
      return 4 + view.getUint32(p, true);
    default:
      return 8;
  }
}

/** The text of a `last` value stored as text, at `p` (the value's start). */
export function lastText(state: BinaryState, p: number): string {
  const length = state.view.getUint32(p + 9, true);
  return state.bytes.toString('utf8', p + 13, p + 13 + length);
}

export function sketchText(state: BinaryState, p: number): string {
  const length = state.view.getUint32(p, true);
  return state.bytes.toString('latin1', p + 4, p + 4 + length);
}

function decodeBinary(bytes: Buffer, skipSketches: boolean): PartitionState {
  const stored = openBinaryState(bytes);
  const { view } = stored;
  const { columns, codes } = readSlots(stored);
  const state = emptyState();
  state.newest = stored.newest;
  let p = HEADER_BYTES;
  while (p < stored.slotsAt) {
    if (p + TILE_HEADER_BYTES + 2 > stored.slotsAt) throw malformedState(`a tile header at byte ${p} runs past the tiles`);
    const key = `${view.getUint32(p, true)}:${view.getFloat64(p + 4, true)}`;
    const end = p + TILE_HEADER_BYTES + view.getUint32(p + 12, true);
    if (end > stored.slotsAt) throw malformedState(`tile ${key} runs past the tiles`);
    const count = view.getUint16(p + TILE_HEADER_BYTES, true);
    p += TILE_HEADER_BYTES + 2;
    const tile: Tile = new Map();
    for (let k = 0; k < count; k++) {
      const slot = view.getUint16(p, true);
      p += 2;
      const column = columns[slot];
      const code = codes[slot];
      if (column === undefined || code === undefined) throw malformedState(`tile ${key} names slot ${slot} of ${columns.length}`);
      let columnState = tile.get(column);
      if (!columnState) {
        columnState = emptyComponents();
        tile.set(column, columnState);
      }
      const component = COMPONENTS_BY_CODE[code]!;
      switch (component) {
        case 'dc':
          if (!skipSketches) columnState.dc = decodeSketch(sketchText(stored, p));
          break;
        case 'mv':
          columnState.mv = { n: view.getFloat64(p, true), mean: view.getFloat64(p + 8, true), m2: view.getFloat64(p + 16, true) };
          break;
        case 'lv':
          columnState.lv = {
            time: view.getFloat64(p, true),
            value: view.getUint8(p + 8) === LAST_NUMBER ? view.getFloat64(p + 9, true) : lastText(stored, p),
          };
          break;
        default:
          columnState[component] = view.getFloat64(p, true);
      }
      p += valueBytes(view, code, p);
    }
    if (p !== end) throw malformedState(`tile ${key} holds ${end - p} bytes more or less than its components`);
    state.tiles.set(key, tile);
  }
  p = stored.idsAt;
  const ids = view.getUint32(p, true);
  p += 4;
  for (let k = 0; k < ids; k++) {
    const time = view.getFloat64(p, true);
    const length = view.getUint32(p + 8, true);
    if (p + 12 + length > bytes.length) throw malformedState(`event id ${k} runs past the value`);
    state.seen.set(bytes.toString('utf8', p + 12, p + 12 + length), time);
    p += 12 + length;
  }
  return state;
}

/**
 * Decodes the value of an `s<partition>` field, in the binary layout or the JSON one of
 * earlier versions (throws on a value this version cannot read). `skipSketches`: leave
 * the distinct-count sketches out (their decoding is the costliest part).
 */
export function decodePartitionState(value: StoredValue, options: { skipSketches?: boolean } = {}): PartitionState {
  if (isJsonState(value)) return decodeJsonPartitionState(typeof value === 'string' ? value : value.toString('utf8'), options);
  try {
    return decodeBinary(value as Buffer, options.skipSketches ?? false);
  } catch (error) {
    if (error instanceof RangeError) throw malformedState(`truncated (${error.message})`);
    throw error;
  }
}
