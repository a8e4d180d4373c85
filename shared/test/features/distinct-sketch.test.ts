/**
 * The distinct_count sketch: exact below its limit, within the documented error above it on
 * seeded random and sequential value sets, merge laws on every mix of empty, exact and dense
 * sketches, order independence, and the text encoding (sizes: empty 1 character, 1 value 12,
 * 10 values 108, SKETCH_EXACT_LIMIT = 256 values 2732, dense 4097).
 */
import { describe, it, expect } from 'vitest';
import {
  addToSketch,
  decodeSketch,
  emptySketch,
  encodedSketchLength,
  encodeSketch,
  estimateDistinct,
  mergeSketches,
  sketchOf,
  writeSketch,
  SKETCH_EXACT_LIMIT,
  SKETCH_PRECISION,
  SKETCH_RELATIVE_ERROR,
  type DistinctSketch,
} from '../../src/features/distinct-sketch.js';
import { createRandom, type Random } from '../../src/model/random.js';

/** Split by code point, so the astral character never becomes a lone surrogate. */
const SYMBOLS = [...'abcdefghijklmnopqrstuvwxyz0123456789-_:.éü€日本😀'];

function distinctValues(random: Random, count: number): string[] {
  const values = new Set<string>();
  while (values.size < count) {
    const length = 1 + random.int(16);
    let value = '';
    for (let i = 0; i < length; i++) value += SYMBOLS[random.int(SYMBOLS.length)];
    values.add(value);
  }
  return [...values];
}

const ids = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `user-${from + i}`);
const sketchFrom = (values: readonly string[]): DistinctSketch => values.reduce(addToSketch, emptySketch());
const relativeError = (sketch: DistinctSketch, truth: number): number => estimateDistinct(sketch) / truth - 1;
const hexToBase64url = (hex: string): string => Buffer.from(hex, 'hex').toString('base64url');

describe('distinct sketch: exact mode', () => {
  it('counts exactly up to SKETCH_EXACT_LIMIT distinct values, ignoring repeats', () => {
    const random = createRandom(7);
    const values = distinctValues(random, SKETCH_EXACT_LIMIT);
    const sketch = emptySketch();
    expect(estimateDistinct(sketch)).toBe(0);
    values.forEach((value, n) => {
      addToSketch(sketch, value);
      addToSketch(sketch, values[random.int(n + 1)]!);
      expect(estimateDistinct(sketch)).toBe(n + 1);
    });
    expect(encodeSketch(sketch)[0]).toBe('s');
    expect(encodeSketch(addToSketch(sketch, 'one more'))[0]).toBe('d');
    expect(estimateDistinct(sketch)).toBeGreaterThan(SKETCH_EXACT_LIMIT);
  });

  it('counts the empty string and one value', () => {
    expect(estimateDistinct(sketchOf(''))).toBe(1);
    expect(estimateDistinct(addToSketch(sketchOf('a'), 'a'))).toBe(1);
  });
});

describe('distinct sketch: accuracy', () => {
  it('documents p = 12 (4096 registers), relative standard error 1.04 / 64 = 1.625%', () => {
    expect(SKETCH_PRECISION).toBe(12);
    expect(SKETCH_RELATIVE_ERROR).toBeCloseTo(0.01625, 6);
  });

  for (const truth of [100, 1_000, 10_000, 100_000]) {
    it(`estimates ${truth} distinct values within 3 x ${SKETCH_RELATIVE_ERROR} on 5 random sets and sequential ids`, () => {
      const errors = [1, 2, 3, 4, 5].map((seed) =>
        relativeError(sketchFrom(distinctValues(createRandom(seed * 1_000_003 + truth), truth)), truth),
      );
      errors.push(relativeError(sketchFrom(ids(0, truth)), truth));
      for (const error of errors) expect(Math.abs(error)).toBeLessThanOrEqual(3 * SKETCH_RELATIVE_ERROR);
      const rms = Math.sqrt(errors.reduce((sum, error) => sum + error * error, 0) / errors.length);
      expect(rms).toBeLessThanOrEqual(1.5 * SKETCH_RELATIVE_ERROR);
    });
  }
});

describe('distinct sketch: merging', () => {
  const values = ids(0, 6_000);
  const sketches: Record<string, DistinctSketch> = {
    empty: emptySketch(),
    one: sketchOf(values[0]!),
    ten: sketchFrom(values.slice(0, 10)),
    atLimit: sketchFrom(values.slice(5, 5 + SKETCH_EXACT_LIMIT)),
    exact200: sketchFrom(values.slice(150, 350)),
    dense1000: sketchFrom(values.slice(200, 1_200)),
    dense5000: sketchFrom(values.slice(1_000, 6_000)),
  };
  const all = Object.values(sketches);

  it('is commutative, associative and idempotent, with the empty sketch as identity', () => {
    for (const a of all) {
      expect(encodeSketch(mergeSketches(a, a))).toBe(encodeSketch(a));
      expect(encodeSketch(mergeSketches(a, sketches.empty!))).toBe(encodeSketch(a));
      for (const b of all) {
        expect(encodeSketch(mergeSketches(a, b))).toBe(encodeSketch(mergeSketches(b, a)));
        for (const c of all) {
          expect(encodeSketch(mergeSketches(mergeSketches(a, b), c))).toBe(encodeSketch(mergeSketches(a, mergeSketches(b, c))));
        }
      }
    }
  });

  it('leaves its inputs unchanged, and adding to the result does not reach them', () => {
    for (const a of all) {
      for (const b of all) {
        const before = [encodeSketch(a), encodeSketch(b)];
        const merged = mergeSketches(a, b);
        for (const value of ids(10_000, 10_400)) addToSketch(merged, value);
        expect([encodeSketch(a), encodeSketch(b)]).toEqual(before);
      }
    }
  });

  it.each([
    ['exact + exact, union fits', [0, 100], [50, 150]],
    ['exact + exact, union overflows into dense', [0, 200], [100, 400]],
    ['disjoint dense sets', [0, 3_000], [3_000, 8_000]],
    ['overlapping dense sets', [0, 6_000], [4_000, 10_000]],
    ['exact + dense', [20_000, 20_100], [0, 5_000]],
  ] as const)('estimates the union for %s, identical to sketching the union directly', (_, [a0, a1], [b0, b1]) => {
    const union = new Set([...ids(a0, a1), ...ids(b0, b1)]);
    const merged = mergeSketches(sketchFrom(ids(a0, a1)), sketchFrom(ids(b0, b1)));
    expect(encodeSketch(merged)).toBe(encodeSketch(sketchFrom([...union])));
    if (union.size <= SKETCH_EXACT_LIMIT) expect(estimateDistinct(merged)).toBe(union.size);
    else expect(Math.abs(relativeError(merged, union.size))).toBeLessThanOrEqual(3 * SKETCH_RELATIVE_ERROR);
  });

  it('folds many small tiles (repeats across and within tiles) into the sketch of all their values', () => {
    const random = createRandom(42);
    const pool = distinctValues(random, 3_000);
    const tiles = Array.from({ length: 400 }, () => Array.from({ length: random.int(30) }, () => pool[random.int(pool.length)]!));
    const merged = tiles.map(sketchFrom).reduce(mergeSketches, emptySketch());
    const union = new Set(tiles.flat());
    expect(encodeSketch(merged)).toBe(encodeSketch(sketchFrom([...union])));
    expect(Math.abs(relativeError(merged, union.size))).toBeLessThanOrEqual(3 * SKETCH_RELATIVE_ERROR);
  });
});

describe('distinct sketch: order independence', () => {
  it.each([50, SKETCH_EXACT_LIMIT + 1, 5_000])('gives identical encodings for %i values in any order, with repeats', (count) => {
    const random = createRandom(count);
    const values = distinctValues(random, count);
    const expected = encodeSketch(sketchFrom(values));
    for (let round = 0; round < 3; round++) {
      const shuffled = random.shuffle([...values, ...values.slice(0, count / 2)]);
      expect(encodeSketch(sketchFrom(shuffled))).toBe(expected);
    }
  });
});

describe('distinct sketch: encoding', () => {
  const cases: Array<[string, DistinctSketch]> = [
    ['empty', emptySketch()],
    ['one value', sketchOf('x')],
    ['10 values', sketchFrom(ids(0, 10))],
    ['256 values', sketchFrom(ids(0, SKETCH_EXACT_LIMIT))],
    ['1,000 values', sketchFrom(ids(0, 1_000))],
    ['100,000 values', sketchFrom(ids(0, 100_000))],
  ];

  it('sizes: empty 1 character, 1 value 12, 10 values 108, 256 values 2732, dense 4097', () => {
    expect(cases.map(([name, sketch]) => [name, encodeSketch(sketch).length])).toEqual([
      ['empty', 1],
      ['one value', 12],
      ['10 values', 108],
      ['256 values', 2_732],
      ['1,000 values', 4_097],
      ['100,000 values', 4_097],
    ]);
  });

  it('writes into bytes exactly its text, for every size of an exact sketch and a dense one', () => {
    const sketches = [...cases.map(([, sketch]) => sketch)];
    // Every remainder of the hashes' bytes over 3 (a base64 group), up to past the exact limit.
    for (let count = 1; count <= SKETCH_EXACT_LIMIT + 3; count += 1) sketches.push(sketchFrom(ids(0, count)));
    const bytes = Buffer.alloc(5_000, 0xee);
    for (const sketch of sketches) {
      const text = encodeSketch(sketch);
      expect(encodedSketchLength(sketch)).toBe(text.length);
      expect(writeSketch(sketch, bytes, 7)).toBe(text.length);
      expect(bytes.toString('latin1', 7, 7 + text.length)).toBe(text);
      expect(bytes[6]).toBe(0xee);
    }
  });

  it('uses only base64url characters, so no "|", newline or JSON escapes', () => {
    for (const [, sketch] of cases) {
      const text = encodeSketch(sketch);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(JSON.stringify(text)).toBe(`"${text}"`);
    }
  });

  it('round-trips: the decoded sketch has the same encoding, estimate and merges', () => {
    for (const [, sketch] of cases) {
      const decoded = decodeSketch(encodeSketch(sketch));
      expect(encodeSketch(decoded)).toBe(encodeSketch(sketch));
      expect(estimateDistinct(decoded)).toBe(estimateDistinct(sketch));
      for (const [, other] of cases) expect(encodeSketch(mergeSketches(decoded, other))).toBe(encodeSketch(mergeSketches(sketch, other)));
    }
  });

  it('pins the hash: MurmurHash3 x86_32 of the UTF-8 bytes with seeds 0 (high) and 0x9747b28c (low)', () => {
    // Published vectors: "hello" seed 0 = 0x248bfa47; the fox sentence, seed 0 = 0x2e4ff723, seed 0x9747b28c = 0x2fa826cd.
    // "hello" seed 0x9747b28c = 0x5d7f56e8 was checked against a reference implementation over the same bytes.
    expect(encodeSketch(sketchOf('hello'))).toBe('s' + hexToBase64url('248bfa475d7f56e8'));
    expect(encodeSketch(sketchOf('The quick brown fox jumps over the lazy dog'))).toBe('s' + hexToBase64url('2e4ff7232fa826cd'));
  });

  const ascending = (count: number): string => {
    const bytes = Buffer.alloc(8 * count);
    for (let i = 0; i < count; i++) bytes.writeUInt32BE(i, 8 * i + 4);
    return 's' + bytes.toString('base64url');
  };
  const oneValue = encodeSketch(sketchOf('hello'));

  it.each([
    ['', /start with "e", "s" or "d"/],
    ['x123', /start with "e", "s" or "d"/],
    ['e0', /has no body/],
    ['s', /base64url of 8 bytes per value/],
    ['s!!!!', /base64url of 8 bytes per value/],
    ['sAAAA', /base64url of 8 bytes per value/],
    [oneValue.slice(0, -1) + 'h', /base64url of 8 bytes per value/],
    ['s' + hexToBase64url('00000001000000020000000100000002'), /strictly ascending \(value 1/],
    ['s' + hexToBase64url('00000002000000000000000100000000'), /strictly ascending/],
    [ascending(SKETCH_EXACT_LIMIT + 1), /at most 256 values/],
    ['d' + 'A'.repeat(4_095), /4096 registers, got 4095/],
    ['d' + 'A'.repeat(4_095) + '2', /register 4095 is "2", not a rank 0..53/],
    ['d' + 'A'.repeat(4_095) + '=', /register 4095/],
  ])('rejects malformed text %j', (text, message) => {
    expect(() => decodeSketch(text)).toThrow(message);
    expect(() => decodeSketch(text)).toThrow(/^decodeSketch: malformed distinct sketch/);
  });

  it('decodes the largest exact sketch, and rejects values that are not sketches', () => {
    expect(estimateDistinct(decodeSketch(ascending(SKETCH_EXACT_LIMIT)))).toBe(SKETCH_EXACT_LIMIT);
    expect(() => decodeSketch(42 as unknown as string)).toThrow('decodeSketch: expected a string, got number');
    expect(() => estimateDistinct(JSON.parse('{}') as DistinctSketch)).toThrow(/not a sketch made by this module/);
  });
});
