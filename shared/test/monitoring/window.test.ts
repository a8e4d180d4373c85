import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildProfile, type ReferenceProfile, type Row } from '../../src/monitoring/profile.js';
import { emptyWindow, observeRow } from '../../src/monitoring/window.js';

/** The bin of x by a linear scan: the number of edges at or below it (brute force, no search). */
const linearBin = (edges: readonly number[], x: number) => edges.filter((e) => e <= x).length;

const reference = buildProfile(
  Array.from({ length: 400 }, (_, i) => ({ x: (i * 37) % 101, y: i % 7, c: ['a', 'b', 'c'][i % 3] })),
  [
    { name: 'x', kind: 'numeric' },
    { name: 'y', kind: 'numeric' },
    { name: 'c', kind: 'categorical' },
  ],
  { bins: 10 },
);

describe('observeRow', () => {
  it('counts numeric values on the bin a linear scan of the edges gives, edges themselves and non-numbers included', () => {
    const x = reference.features.x!;
    const y = reference.features.y!;
    if (x.kind !== 'numeric' || y.kind !== 'numeric') throw new Error('numeric features expected');
    const edgeValue = fc.constantFrom(...x.edges, ...y.edges);
    const value = fc.oneof(
      edgeValue,
      fc.double({ min: -50, max: 150, noNaN: true }),
      fc.constantFrom(NaN, Infinity, -Infinity, null, '3', undefined),
    );
    fc.assert(
      fc.property(fc.array(fc.record({ x: value, y: value }), { maxLength: 60 }), (rows) => {
        const window = emptyWindow(reference);
        const expected = {
          x: { counts: x.counts.map(() => 0), missing: 0, defaulted: 0 },
          y: { counts: y.counts.map(() => 0), missing: 0, defaulted: 0 },
        };
        for (const row of rows) {
          observeRow(reference, window, row as Row);
          for (const [name, feature] of [
            ['x', x],
            ['y', y],
          ] as const) {
            const v = row[name];
            if (typeof v === 'number' && Number.isFinite(v)) expected[name].counts[linearBin(feature.edges, v)]!++;
            else expected[name].missing++;
          }
        }
        expect(window.features.x).toEqual(expected.x);
        expect(window.features.y).toEqual(expected.y);
        expect(window.rows).toBe(rows.length);
      }),
    );
  });

  it('keeps windows of different profiles apart, and refuses a window of another profile', () => {
    const other: ReferenceProfile = buildProfile([{ x: 1 }, { x: 2 }, { x: 3 }], [{ name: 'x', kind: 'numeric' }], { bins: 2 });
    const a = emptyWindow(reference);
    const b = emptyWindow(other);
    for (let i = 0; i < 3; i++) {
      observeRow(reference, a, { x: 200, y: 200, c: 'a' });
      observeRow(other, b, { x: 0 });
    }
    expect(a.features.x!.counts.at(-1)).toBe(3);
    expect(a.features.c!.counts[0]).toBe(3);
    expect(b.features.x).toEqual({ counts: [3, 0], missing: 0, defaulted: 0 });
    expect(() => observeRow(reference, b, { x: 1 })).toThrow(/window has no feature "y"/);
  });
});
