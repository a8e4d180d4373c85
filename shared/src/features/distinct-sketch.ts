/**
 * Approximate `distinct_count` state for tiles: a HyperLogLog sketch in the spirit of HLL++
 * (Heule, Nunkesser, Hall 2013). Pure: no I/O, the same bytes on every machine.
 *
 * - Hash: 64 bits per value, as two MurmurHash3 x86_32 hashes of the value's UTF-8 bytes with
 *   the fixed seeds 0 (high word) and 0x9747b28c (low word), computed in one pass. Murmur3 is
 *   fast, well mixed and has published test vectors, so another language can reproduce the
 *   sketches (e.g. Python `mmh3.hash(v.encode(), seed, signed=False)`). 64 bits mean no
 *   large-range correction is needed. It is not keyed: crafted inputs can collide on purpose.
 *   Strings differing only in lone surrogates (invalid UTF-16) hash alike.
 * - Exact mode: up to SKETCH_EXACT_LIMIT distinct hashes are kept as a sorted set, so the count
 *   is exact up to 64-bit hash collisions. Its encoding (8 bytes a hash) stays below the dense
 *   one up to 384 hashes.
 * - Dense mode: 2^SKETCH_PRECISION = 4096 registers (the top 12 hash bits choose the register,
 *   the register keeps the largest rank, 1 + leading zeros of the other 52 bits, at most 53),
 *   relative standard error 1.04 / sqrt(4096) = 1.625%. The estimate is Ertl's improved
 *   estimator ("New cardinality estimation algorithms for HyperLogLog sketches", 2017; the one
 *   Redis uses) over the register histogram: it behaves like linear counting while most
 *   registers are zero and like raw HLL later, without the switch-over of the classic
 *   "raw HLL, linear counting below 2.5 * registers" rule, which measured here +1.5% bias and
 *   2.8% RMS error at 10,000 values (2.4 * registers) against no bias and 1.2% for Ertl's.
 *
 * The state is a function of the set of distinct hashes alone (exact while it fits, else the
 * register-wise maximum), so adding in any order gives the same encoding and merging is
 * associative, commutative and idempotent.
 *
 * Encoding (base64url characters only, so no '|', newline, quote or backslash):
 * `e` empty; `s` + base64url of the sorted hashes, 8 big-endian bytes each (12 characters for
 * one value, 108 for ten, 2732 at the limit); `d` + one character per register (a register fits
 * in 6 bits), 4097 in all. The tag doubles as the format version: a new hash or precision
 * needs new tags.
 */

declare const sketchBrand: unique symbol;

/** Opaque: create with emptySketch/sketchOf/decodeSketch; store with encodeSketch. */
export interface DistinctSketch {
  readonly [sketchBrand]: true;
}

export const SKETCH_PRECISION = 12;
const REGISTER_COUNT = 1 << SKETCH_PRECISION;
/** Relative standard error of the dense estimate: 1.04 / sqrt(registers) = 0.01625. */
export const SKETCH_RELATIVE_ERROR = 1.04 / Math.sqrt(REGISTER_COUNT);
/** Up to this many distinct values the estimate is exact (up to 64-bit hash collisions). */
export const SKETCH_EXACT_LIMIT = 256;

const INDEX_SHIFT = 32 - SKETCH_PRECISION;
const REST_MASK = (1 << INDEX_SHIFT) - 1;
const MAX_RANK = 64 - SKETCH_PRECISION + 1;

const EMPTY_TAG = 'e';
const SPARSE_TAG = 's';
const DENSE_TAG = 'd';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/;

class Sketch {
  /** Sorted distinct hashes as (high, low) word pairs while exact; empty once dense. */
  hashes: number[] = [];
  /** The registers once there are more than SKETCH_EXACT_LIMIT distinct hashes. */
  registers: Uint8Array | null = null;
}

function open(sketch: DistinctSketch): Sketch {
  if (!(sketch instanceof Sketch)) throw new Error('distinct sketch: not a sketch made by this module (decode stored text first)');
  return sketch;
}

function seal(sketch: Sketch): DistinctSketch {
  return sketch as unknown as DistinctSketch;
}

// ---- hashing: MurmurHash3 x86_32 twice (two seeds) over the UTF-8 bytes, in one pass ----

const SEED_HIGH = 0;
const SEED_LOW = 0x9747b28c;
const utf8 = new TextEncoder();
let scratch = new Uint8Array(64);
let hashHigh = 0;
let hashLow = 0;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
const scramble = (k: number): number => Math.imul(rotl(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
const mixBlock = (h: number, k: number): number => (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;

function finalMix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Sets hashHigh and hashLow (unsigned 32-bit) for `value`, without allocating. */
function hashValue(value: string): void {
  if (scratch.length < value.length * 3) scratch = new Uint8Array(value.length * 3);
  const length = utf8.encodeInto(value, scratch).written;
  const bytes = scratch;
  const blockEnd = length & ~3;
  let h1 = SEED_HIGH;
  let h2 = SEED_LOW;
  for (let i = 0; i < blockEnd; i += 4) {
    const k = scramble(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    h1 = mixBlock(h1, k);
    h2 = mixBlock(h2, k);
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = bytes[blockEnd]!;
    if (rest > 1) k |= bytes[blockEnd + 1]! << 8;
    if (rest > 2) k |= bytes[blockEnd + 2]! << 16;
    k = scramble(k);
    h1 ^= k;
    h2 ^= k;
  }
  hashHigh = finalMix(h1 ^ length);
  hashLow = finalMix(h2 ^ length);
}

// ---- state updates ----

function updateRegister(registers: Uint8Array, high: number, low: number): void {
  const rest = high & REST_MASK;
  const rank = rest !== 0 ? Math.clz32(rest) - SKETCH_PRECISION + 1 : INDEX_SHIFT + Math.clz32(low) + 1;
  const index = high >>> INDEX_SHIFT;
  if (rank > registers[index]!) registers[index] = rank;
}

/**
 * The sorted pairs with (high, low) inserted, as a new array of exactly their size; null if
 * it was already there. Most sketches of a tile hold one value or a few, and V8 grows an array
 * by 16 slots at a time: a grown one took ~150 of the ~250 bytes of a one-value sketch.
 */
function withHash(hashes: readonly number[], high: number, low: number): number[] | null {
  let from = 0;
  let to = hashes.length / 2;
  while (from < to) {
    const mid = (from + to) >>> 1;
    const h = hashes[2 * mid]!;
    if (h < high || (h === high && hashes[2 * mid + 1]! < low)) from = mid + 1;
    else to = mid;
  }
  const at = 2 * from;
  if (hashes[at] === high && hashes[at + 1] === low) return null;
  const next = new Array<number>(hashes.length + 2);
  for (let i = 0; i < at; i++) next[i] = hashes[i]!;
  next[at] = high;
  next[at + 1] = low;
  for (let i = at; i < hashes.length; i++) next[i + 2] = hashes[i]!;
  return next;
}

function unionHashes(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const ah = a[i] ?? Infinity;
    const bh = b[j] ?? Infinity;
    const al = a[i + 1] ?? Infinity;
    const bl = b[j + 1] ?? Infinity;
    if (ah < bh || (ah === bh && al < bl)) {
      out.push(ah, al);
      i += 2;
    } else {
      out.push(bh, bl);
      if (ah === bh && al === bl) i += 2;
      j += 2;
    }
  }
  return out;
}

function addHashesToRegisters(registers: Uint8Array, hashes: readonly number[]): void {
  for (let i = 0; i < hashes.length; i += 2) updateRegister(registers, hashes[i]!, hashes[i + 1]!);
}

function densify(sketch: Sketch): void {
  sketch.registers = new Uint8Array(REGISTER_COUNT);
  addHashesToRegisters(sketch.registers, sketch.hashes);
  sketch.hashes = [];
}

// ---- public API ----

export function emptySketch(): DistinctSketch {
  return seal(new Sketch());
}

export function sketchOf(value: string): DistinctSketch {
  return addToSketch(emptySketch(), value);
}

/** Adds `value` to `sketch` in place and returns it. */
export function addToSketch(sketch: DistinctSketch, value: string): DistinctSketch {
  const state = open(sketch);
  hashValue(value);
  if (state.registers) updateRegister(state.registers, hashHigh, hashLow);
  else {
    const hashes = withHash(state.hashes, hashHigh, hashLow);
    if (hashes !== null) {
      state.hashes = hashes;
      if (hashes.length > 2 * SKETCH_EXACT_LIMIT) densify(state);
    }
  }
  return sketch;
}

/** The sketch of the union of both inputs' values, as a new sketch; `a` and `b` are unchanged. */
export function mergeSketches(a: DistinctSketch, b: DistinctSketch): DistinctSketch {
  const x = open(a);
  const y = open(b);
  const merged = new Sketch();
  if (!x.registers && !y.registers) {
    merged.hashes = unionHashes(x.hashes, y.hashes);
    if (merged.hashes.length > 2 * SKETCH_EXACT_LIMIT) densify(merged);
    return seal(merged);
  }
  const registers = new Uint8Array(REGISTER_COUNT);
  for (const source of [x, y]) {
    if (!source.registers) addHashesToRegisters(registers, source.hashes);
    else for (let i = 0; i < REGISTER_COUNT; i++) registers[i] = Math.max(registers[i]!, source.registers[i]!);
  }
  merged.registers = registers;
  return seal(merged);
}

/** The number of distinct values: exact in exact mode, else the HLL estimate (an integer). */
export function estimateDistinct(sketch: DistinctSketch): number {
  const { hashes, registers } = open(sketch);
  if (!registers) return hashes.length / 2;
  const histogram = new Array<number>(MAX_RANK + 1).fill(0);
  for (let i = 0; i < REGISTER_COUNT; i++) histogram[registers[i]!]!++;
  const m = REGISTER_COUNT;
  let z = m * ertlTau(1 - histogram[MAX_RANK]! / m);
  for (let rank = MAX_RANK - 1; rank >= 1; rank--) z = 0.5 * (z + histogram[rank]!);
  z += m * ertlSigma(histogram[0]! / m);
  const estimate = (m * m) / (2 * Math.LN2 * z);
  // A dense sketch has seen more than SKETCH_EXACT_LIMIT distinct hashes for certain.
  return Math.max(Math.round(estimate), SKETCH_EXACT_LIMIT + 1);
}

/** Ertl's sigma(x) = x + sum_k x^(2^k) * 2^(k-1), the correction for registers still zero. */
function ertlSigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  for (let previous = -1; z !== previous; y += y) {
    previous = z;
    x *= x;
    z += x * y;
  }
  return z;
}

/** Ertl's tau(x), the correction for registers at the largest rank. */
function ertlTau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (let previous = -1; z !== previous;) {
    previous = z;
    x = Math.sqrt(x);
    y *= 0.5;
    z -= (1 - x) ** 2 * y;
  }
  return z / 3;
}

export function encodeSketch(sketch: DistinctSketch): string {
  const { hashes, registers } = open(sketch);
  if (registers) {
    let text = DENSE_TAG;
    for (let i = 0; i < REGISTER_COUNT; i++) text += BASE64URL[registers[i]!];
    return text;
  }
  if (hashes.length === 0) return EMPTY_TAG;
  const bytes = Buffer.alloc(hashes.length * 4);
  for (let i = 0; i < hashes.length; i++) bytes.writeUInt32BE(hashes[i]!, i * 4);
  return SPARSE_TAG + bytes.toString('base64url');
}

const BASE64URL_CODES = Uint8Array.from(BASE64URL, (c) => c.charCodeAt(0));

/** Byte `i` of the hashes' big-endian bytes. */
function byteAt(hashes: number[], i: number): number {
  return (hashes[i >>> 2]! >>> (24 - 8 * (i & 3))) & 0xff;
}

/** Bytes of `encodeSketch(sketch)` (its characters are ASCII). */
export function encodedSketchLength(sketch: DistinctSketch): number {
  const { hashes, registers } = open(sketch);
  if (registers) return 1 + REGISTER_COUNT;
  if (hashes.length === 0) return 1;
  return 1 + Math.ceil((hashes.length * 4 * 8) / 6);
}

/**
 * Writes `encodeSketch(sketch)` as ASCII bytes into `target` at `at` (room for
 * `encodedSketchLength` bytes is the caller's business), without making the text.
 */
export function writeSketch(sketch: DistinctSketch, target: Uint8Array, at: number): number {
  const { hashes, registers } = open(sketch);
  let p = at;
  if (registers) {
    target[p++] = DENSE_TAG.charCodeAt(0);
    for (let i = 0; i < REGISTER_COUNT; i++) target[p++] = BASE64URL_CODES[registers[i]!]!;
    return p - at;
  }
  if (hashes.length === 0) {
    target[p++] = EMPTY_TAG.charCodeAt(0);
    return 1;
  }
  target[p++] = SPARSE_TAG.charCodeAt(0);
  // base64url without padding of the hashes' big-endian bytes, 3 bytes (4 characters) at a time.
  const length = hashes.length * 4;
  let i = 0;
  for (; i + 3 <= length; i += 3) {
    const bits = (byteAt(hashes, i) << 16) | (byteAt(hashes, i + 1) << 8) | byteAt(hashes, i + 2);
    target[p++] = BASE64URL_CODES[bits >>> 18]!;
    target[p++] = BASE64URL_CODES[(bits >>> 12) & 63]!;
    target[p++] = BASE64URL_CODES[(bits >>> 6) & 63]!;
    target[p++] = BASE64URL_CODES[bits & 63]!;
  }
  if (length - i === 1) {
    const bits = byteAt(hashes, i) << 16;
    target[p++] = BASE64URL_CODES[bits >>> 18]!;
    target[p++] = BASE64URL_CODES[(bits >>> 12) & 63]!;
  } else if (length - i === 2) {
    const bits = (byteAt(hashes, i) << 16) | (byteAt(hashes, i + 1) << 8);
    target[p++] = BASE64URL_CODES[bits >>> 18]!;
    target[p++] = BASE64URL_CODES[(bits >>> 12) & 63]!;
    target[p++] = BASE64URL_CODES[(bits >>> 6) & 63]!;
  }
  return p - at;
}

export function decodeSketch(text: string): DistinctSketch {
  if (typeof text !== 'string') throw new Error(`decodeSketch: expected a string, got ${typeof text}`);
  const body = text.slice(1);
  const sketch = new Sketch();
  switch (text[0]) {
    case EMPTY_TAG:
      if (body !== '') throw malformed(text, 'the empty sketch "e" has no body');
      break;
    case SPARSE_TAG:
      sketch.hashes = decodeSparse(text, body);
      break;
    case DENSE_TAG:
      sketch.registers = decodeDense(text, body);
      break;
    default:
      throw malformed(text, `expected it to start with "${EMPTY_TAG}", "${SPARSE_TAG}" or "${DENSE_TAG}"`);
  }
  return seal(sketch);
}

function decodeSparse(text: string, body: string): number[] {
  const bytes = BASE64URL_PATTERN.test(body) ? Buffer.from(body, 'base64url') : null;
  if (!bytes || bytes.toString('base64url') !== body || bytes.length % 8 !== 0) {
    throw malformed(text, 'an exact sketch is unpadded base64url of 8 bytes per value');
  }
  if (bytes.length / 8 > SKETCH_EXACT_LIMIT) throw malformed(text, `an exact sketch holds at most ${SKETCH_EXACT_LIMIT} values`);
  // Of exactly its size (see withHash).
  const hashes = new Array<number>(bytes.length / 4);
  for (let i = 0; i < bytes.length; i += 8) {
    const high = bytes.readUInt32BE(i);
    const low = bytes.readUInt32BE(i + 4);
    const n = i / 4;
    if (n > 0 && (high < hashes[n - 2]! || (high === hashes[n - 2]! && low <= hashes[n - 1]!))) {
      throw malformed(text, `exact sketch hashes must be strictly ascending (value ${i / 8} is not)`);
    }
    hashes[n] = high;
    hashes[n + 1] = low;
  }
  return hashes;
}

function decodeDense(text: string, body: string): Uint8Array {
  if (body.length !== REGISTER_COUNT) throw malformed(text, `a dense sketch has ${REGISTER_COUNT} registers, got ${body.length}`);
  const registers = new Uint8Array(REGISTER_COUNT);
  for (let i = 0; i < REGISTER_COUNT; i++) {
    const rank = BASE64URL.indexOf(body[i]!);
    if (rank < 0 || rank > MAX_RANK) throw malformed(text, `register ${i} is ${JSON.stringify(body[i])}, not a rank 0..${MAX_RANK}`);
    registers[i] = rank;
  }
  return registers;
}

function malformed(text: string, reason: string): Error {
  const shown = text.length > 32 ? `${JSON.stringify(text.slice(0, 32))}... (${text.length} characters)` : JSON.stringify(text);
  return new Error(`decodeSketch: malformed distinct sketch ${shown}: ${reason}`);
}
