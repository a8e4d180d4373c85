import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SlidingWindow, type MergeableState } from '../../src/monitoring/sliding-window.js';

interface Sum {
  total: number;
  count: number;
}
const sumState: MergeableState<Sum> = {
  empty: () => ({ total: 0, count: 0 }),
  merge: (a, b) => ({ total: a.total + b.total, count: a.count + b.count }),
};

describe('SlidingWindow', () => {
  it('keeps the last `buckets` buckets and recycles older ones', () => {
    const window = new SlidingWindow(sumState, { bucketMs: 1000, buckets: 3 });
    const add = (ts: number, v: number) => {
      const s = window.at(ts);
      if (s) {
        s.total += v;
        s.count++;
      }
    };
    add(500, 1); // bucket 0
    add(1500, 2); // bucket 1
    add(2500, 4); // bucket 2
    expect(window.read()).toEqual({ total: 7, count: 3 });
    add(3100, 8); // bucket 3 replaces bucket 0
    expect(window.read()).toEqual({ total: 14, count: 3 });
    add(900, 100); // bucket 0 is out of the window: late
    expect(window.late).toBe(1);
    expect(window.read()).toEqual({ total: 14, count: 3 });
    // Reading later, with no new events: only buckets 3..5 would count, i.e. bucket 3.
    expect(window.read(5000)).toEqual({ total: 8, count: 1 });
    expect(window.read(9000)).toEqual({ total: 0, count: 0 });
  });

  it('matches a brute-force window on random out-of-order streams', () => {
    const bucketMs = 10;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -5, max: 5 })), { maxLength: 100 }),
        fc.integer({ min: 0, max: 100 }),
        (buckets, events, ahead) => {
          const window = new SlidingWindow(sumState, { bucketMs, buckets });
          const kept: Array<[number, number]> = [];
          let newest = -Infinity;
          let late = 0;
          for (const [ts, v] of events) {
            const s = window.at(ts);
            // Reference: an event is counted unless its bucket is older than the window at its arrival.
            const bucket = Math.floor(ts / bucketMs);
            newest = Math.max(newest, bucket);
            if (bucket <= newest - buckets) {
              late++;
              expect(s).toBeUndefined();
            } else {
              kept.push([bucket, v]);
              s!.total += v;
              s!.count++;
            }
          }
          expect(window.late).toBe(late);
          const expectAt = (last: number) => {
            const inside = kept.filter(([b]) => b > last - buckets && b <= last);
            expect(window.read(last * bucketMs)).toEqual({ total: inside.reduce((a, [, v]) => a + v, 0), count: inside.length });
          };
          if (Number.isFinite(newest)) {
            expectAt(newest);
            expectAt(newest + Math.floor(ahead / bucketMs));
          }
        },
      ),
    );
  });

  it('rejects invalid sizes', () => {
    expect(() => new SlidingWindow(sumState, { bucketMs: 0, buckets: 3 })).toThrow(/bucketMs/);
    expect(() => new SlidingWindow(sumState, { bucketMs: 10, buckets: 1.5 })).toThrow(/buckets/);
  });
});
