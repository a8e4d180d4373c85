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
  it('reads the bucket of `now` and the `buckets` before it, and recycles older ones', () => {
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
    // At 3100 the last 3 s go back to 100, inside bucket 0: buckets 0..3 are read.
    add(3100, 8); // bucket 3
    expect(window.read()).toEqual({ total: 15, count: 4 });
    add(4200, 16); // bucket 4 takes bucket 0's slot
    expect(window.read()).toEqual({ total: 30, count: 4 });
    add(900, 100); // bucket 0 is out of the ring: late
    expect(window.late).toBe(1);
    expect(window.read()).toEqual({ total: 30, count: 4 });
    // Reading later, with no new events: buckets 3..6 at 6000, i.e. buckets 3 and 4.
    expect(window.read(6000)).toEqual({ total: 24, count: 2 });
    expect(window.read(10_000)).toEqual({ total: 0, count: 0 });
  });

  it('covers the whole span: a 1h window of minutes read at 60:30 counts an event of 0:40', () => {
    const window = new SlidingWindow(sumState, { bucketMs: 60_000, buckets: 60 });
    window.at(40_000)!.count++; // 0:40, 59 min 50 s before the read
    window.at(3_600_000 + 20_000)!.count++; // 60:20
    // Reading buckets 1..60 only (59 to 60 minutes) left the event of 0:40 out.
    expect(window.read(3_600_000 + 30_000).count).toBe(2);
    expect(window.read(3_600_000 + 30_000 + 60_000).count).toBe(1);
  });

  it('keeps a window read at `now` whole when an event is stamped up to aheadMs after `now`', () => {
    const minute = 60_000;
    const T0 = 1_700_000_040_000 - (1_700_000_040_000 % minute);
    const now = T0 + 59 * minute + 50_000; // 59:50
    const events = (window: SlidingWindow<Sum>) => {
      for (let k = -1; k < 60; k++) window.at(T0 + k * minute + 1000)!.count++; // one event a minute, -1..59
    };
    const skewed = new SlidingWindow(sumState, { bucketMs: minute, buckets: 60, aheadMs: minute });
    events(skewed);
    expect(skewed.read(now).count).toBe(61); // minutes -1..59
    skewed.at(now + 20_000)!.count++; // 20 s ahead of the reader: minute 60
    expect(skewed.read(now).count).toBe(61);
    expect(skewed.read(now + 20_000).count).toBe(61); // minutes 0..60
    // Without the slots ahead, minute 60 takes minute -1's slot, which the read at 59:50 still covers.
    const plain = new SlidingWindow(sumState, { bucketMs: minute, buckets: 60 });
    events(plain);
    plain.at(now + 20_000)!.count++;
    expect(plain.read(now).count).toBe(60);
  });

  it('matches a brute-force window on random out-of-order streams, read at any time from the newest event less aheadMs on', () => {
    const bucketMs = 10;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 35 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -5, max: 5 })), { maxLength: 100 }),
        fc.integer({ min: 0, max: 100 }),
        (buckets, aheadMs, events, after) => {
          const window = new SlidingWindow(sumState, { bucketMs, buckets, aheadMs });
          const ringSlots = buckets + 1 + Math.ceil(aheadMs / bucketMs);
          const kept: Array<[number, number]> = [];
          let newest = -Infinity;
          let newestTs = -Infinity;
          let late = 0;
          for (const [ts, v] of events) {
            const s = window.at(ts);
            // Reference: an event is counted unless its bucket is older than the ring at its arrival.
            const bucket = Math.floor(ts / bucketMs);
            newest = Math.max(newest, bucket);
            newestTs = Math.max(newestTs, ts);
            if (bucket <= newest - ringSlots) {
              late++;
              expect(s).toBeUndefined();
            } else {
              kept.push([bucket, v]);
              s!.total += v;
              s!.count++;
            }
          }
          expect(window.late).toBe(late);
          const expectAt = (now: number) => {
            const last = Math.floor(now / bucketMs);
            const inside = kept.filter(([b]) => b >= last - buckets && b <= last);
            expect(window.read(now)).toEqual({ total: inside.reduce((a, [, v]) => a + v, 0), count: inside.length });
          };
          if (Number.isFinite(newest)) {
            expect(window.read()).toEqual(window.read(newestTs));
            // A reader whose clock is behind the newest event by up to aheadMs, level with it, or ahead.
            for (let now = Math.max(0, newestTs - aheadMs); now <= newestTs; now++) expectAt(now);
            expectAt(newestTs + after);
          }
        },
      ),
    );
  });

  it('rejects invalid sizes', () => {
    expect(() => new SlidingWindow(sumState, { bucketMs: 0, buckets: 3 })).toThrow(/bucketMs/);
    expect(() => new SlidingWindow(sumState, { bucketMs: 10, buckets: 1.5 })).toThrow(/buckets/);
    expect(() => new SlidingWindow(sumState, { bucketMs: 10, buckets: 2, aheadMs: -1 })).toThrow(/aheadMs/);
  });
});
