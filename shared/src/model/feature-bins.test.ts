import { describe, expect, it } from 'vitest';
import { binIndex, binMatrix } from './feature-bins.js';
import { createRandom } from './random.js';

/** The next float32 above `v` (finite v). */
function nextFloat32Up(v: number): number {
  const f = new Float32Array([v]);
  const bits = new Int32Array(f.buffer);
  if (v === 0) return 1.401298464324817e-45;
  bits[0] = (bits[0] as number) + (v > 0 ? 1 : -1);
  return f[0] as number;
}

describe('binMatrix', () => {
  it('gives each distinct value its own bin when there are few, and NaN the bin after them', () => {
    const data = Float32Array.from([3, NaN, 1, 2, 2, 1, 3, NaN]);
    const m = binMatrix(data, 8, 1, 255);
    expect(Array.from(m.binnings[0]!.edges)).toEqual([1, 2]);
    expect(m.binnings[0]!.missingBin).toBe(3);
    expect(Array.from(m.codes)).toEqual([2, 3, 0, 1, 1, 0, 2, 3]);
    expect(m.slots).toBe(4);
  });

  it('cuts many distinct values at evenly spaced ranks', () => {
    const r = createRandom(1);
    const n = 10_000;
    const data = Float32Array.from({ length: n }, () => r.normal());
    const m = binMatrix(data, n, 1, 16);
    expect(m.binnings[0]!.edges.length).toBe(15);
    const counts = new Array<number>(16).fill(0);
    for (const code of m.codes) counts[code]!++;
    for (const c of counts) expect(Math.abs(c - n / 16)).toBeLessThanOrEqual(2);
  });

  it('keeps a frequent value in a bin of its own and never splits above the maximum', () => {
    const values = [...new Array<number>(900).fill(0), ...Array.from({ length: 100 }, (_, i) => i + 1)];
    const m = binMatrix(Float32Array.from(values), values.length, 1, 8);
    // 0 alone, then the 100 other values shared evenly by the 7 bins left.
    expect(m.binnings[0]!.edges[0]).toBe(0);
    const counts = new Array<number>(8).fill(0);
    for (const code of m.codes) counts[code]!++;
    expect(counts[0]).toBe(900);
    for (const c of counts.slice(1)) expect([14, 15]).toContain(c);
  });

  it('puts v in a bin <= b exactly when v <= edges[b], at the edges, one float32 step away, and for infinities', () => {
    const r = createRandom(2);
    const n = 3000;
    // Few levels and many ties, plus continuous values, -0 and infinities.
    const raw = Array.from({ length: n }, (_, i) =>
      i % 3 === 0 ? r.int(20) / 4 : i % 3 === 1 ? 1e3 * r.normal() : [0, -0, Infinity, -Infinity, NaN][r.int(5)]!,
    );
    const data = Float32Array.from(raw);
    const m = binMatrix(data, n, 1, 32);
    const edges = m.binnings[0]!.edges;
    expect(edges.every((e) => Number.isFinite(e) && Math.fround(e) === e)).toBe(true);
    const probes = [...data, ...Array.from(edges, (e) => nextFloat32Up(e)), ...Array.from(edges, (e) => -nextFloat32Up(-e))];
    for (const v of probes) {
      if (Number.isNaN(v)) continue;
      const bin = binIndex(edges, v);
      for (let b = 0; b < edges.length; b++) expect(bin <= b).toBe(v <= (edges[b] as number));
    }
  });

  it('handles a constant feature and an all-missing feature (no split possible)', () => {
    const data = Float32Array.from([5, NaN, 5, NaN, 5, NaN]);
    const m = binMatrix(data, 3, 2, 255);
    expect(m.binnings.map((b) => b.edges.length)).toEqual([0, 0]);
    expect(Array.from(m.codes)).toEqual([0, 1, 0, 1, 0, 1]);
  });

  it('rejects a bad bin count', () => {
    expect(() => binMatrix(new Float32Array(2), 2, 1, 256)).toThrow(/maxBins must be an integer in \[2, 255\]/);
    expect(() => binMatrix(new Float32Array(2), 2, 1, 1)).toThrow(/maxBins/);
  });
});
