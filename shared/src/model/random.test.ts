import { describe, it, expect } from 'vitest';
import { createRandom } from './random.js';

describe('createRandom', () => {
  it('repeats the same sequence for the same seed and differs for another seed', () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const c = createRandom(43);
    const seqA = Array.from({ length: 20 }, () => a.next());
    const seqB = Array.from({ length: 20 }, () => b.next());
    const seqC = Array.from({ length: 20 }, () => c.next());
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
  });

  it('is mulberry32: the sequence must never change, or training runs stop reproducing', () => {
    // Values from the reference mulberry32 (bryc/code, PRNGs.md) for seeds 0 and 42.
    const zero = createRandom(0);
    expect(Array.from({ length: 4 }, () => zero.next())).toEqual([
      0.26642920868471265, 0.0003297457005828619, 0.2232720274478197, 0.1462021479383111,
    ]);
    const answer = createRandom(42);
    expect(Array.from({ length: 4 }, () => answer.next())).toEqual([
      0.6011037519201636, 0.44829055899754167, 0.8524657934904099, 0.6697340414393693,
    ]);
  });

  it('next() stays in [0, 1) with a mean near 1/2', () => {
    const r = createRandom(7);
    let sum = 0;
    let outOfRange = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const v = r.next();
      if (!(v >= 0 && v < 1)) outOfRange++;
      sum += v;
    }
    expect(outOfRange).toBe(0);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.01);
  });

  it('normal() has mean ~0 and variance ~1', () => {
    const r = createRandom(3);
    const n = 100_000;
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      sum += v;
      squares += v * v;
    }
    expect(Number.isFinite(squares)).toBe(true);
    const mean = sum / n;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(squares / n - mean * mean - 1)).toBeLessThan(0.03);
  });

  it('shuffle() permutes and int() stays in range', () => {
    const r = createRandom(5);
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shuffled = r.shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((x, y) => x - y)).toEqual(items);
    const seen = new Set(Array.from({ length: 1000 }, () => r.int(3)));
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });

  it('rejects a seed that is not an integer', () => {
    expect(() => createRandom(1.5)).toThrow(/seed must be a safe integer/);
    expect(() => createRandom(NaN)).toThrow(/seed/);
  });
});
