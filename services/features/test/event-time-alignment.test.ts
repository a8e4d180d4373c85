import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRandom, type RecordBatch } from '@tributary/shared';
import { EventTimeAlignment } from '../src/event-time-alignment.js';

const minute = 60_000;

/** A batch of `count` records of a partition from offset `from`, fetched when the partition ended at `end`. */
function batch(topic: string, partition: number, from: number, count: number, end: number): RecordBatch {
  const records = Array.from({ length: count }, (_, i) => ({
    topic,
    partition,
    offset: String(from + i),
    key: null,
    value: null,
    timestamp: 0,
    headers: {},
  }));
  return { topic, partition, records, highWatermark: String(end) };
}

/** Offers a batch, takes what the alignment gives, and returns how many. */
function offer(alignment: EventTimeAlignment, offered: RecordBatch, times: number[]): number {
  const taken = alignment.take(offered, times);
  alignment.taken(offered, times, taken);
  return taken;
}

describe('event-time alignment', () => {
  it("only looks at a partition's first batch since the assignment", () => {
    const alignment = new EventTimeAlignment(minute);
    const transactions = batch('transactions', 0, 0, 3, 10);
    expect(offer(alignment, transactions, [1, 2, 3])).toBe(0);
    // Fetched again: nothing else is known to wait.
    expect(offer(alignment, transactions, [1, 2, 3])).toBe(3);
    alignment.forget();
    expect(offer(alignment, batch('transactions', 0, 3, 2, 10), [4, 5])).toBe(0);
  });

  it('takes labels no further than maxAheadMs past the transactions that wait', () => {
    const alignment = new EventTimeAlignment(minute);
    // More transactions wait beyond the batch (the partition ends at 100).
    const transactions = batch('transactions', 0, 0, 2, 100);
    const labels = batch('labels', 0, 0, 4, 4);
    const labelTimes = [0.5, 1.5, 2.5, 3.5].map((m) => m * minute);
    offer(alignment, transactions, [0, minute]);
    offer(alignment, labels, labelTimes);
    expect(offer(alignment, transactions, [0, minute])).toBe(2);
    // The transactions stand at 1 min: the labels up to 2 min are taken, the others left for later.
    expect(offer(alignment, labels, labelTimes)).toBe(2);
    const rest = batch('labels', 0, 2, 2, 4);
    expect(offer(alignment, rest, labelTimes.slice(2))).toBe(0);
    // The next transactions reach 3 min: they are taken, the labels' first left stands at 2.5 min.
    expect(
      offer(
        alignment,
        batch('transactions', 0, 2, 3, 100),
        [2, 2.5, 3].map((m) => m * minute),
      ),
    ).toBe(3);
    expect(offer(alignment, rest, labelTimes.slice(2))).toBe(2);
  });

  it('lets a partition go ahead of those with no record waiting: caught up, idle, or not fetched', () => {
    const alignment = new EventTimeAlignment(minute);
    // Its records all taken, up to the partition's end.
    const transactions = batch('transactions', 0, 0, 2, 2);
    offer(alignment, transactions, [0, minute]);
    expect(offer(alignment, transactions, [0, minute])).toBe(2);
    const labels = batch('labels', 0, 0, 3, 3);
    const labelTimes = [60, 61, 62].map((m) => m * minute);
    offer(alignment, labels, labelTimes);
    expect(offer(alignment, labels, labelTimes)).toBe(3);
  });

  it('takes every record, each partition in order, none more than maxAheadMs behind one taken before it (any batches, any order)', () => {
    const partitionTimes = fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 40 }).map((times) => times.sort((a, b) => a - b));
    fc.assert(
      fc.property(
        fc.array(partitionTimes, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (partitions, maxAheadMs, seed) => {
          const random = createRandom(seed);
          const alignment = new EventTimeAlignment(maxAheadMs);
          const positions = partitions.map(() => 0);
          const taken: number[][] = partitions.map(() => []);
          let latest = -Infinity;
          const serve = (p: number) => {
            const times = partitions[p]!.slice(positions[p], positions[p]! + 1 + random.int(10));
            const n = offer(alignment, batch('t', p, positions[p]!, times.length, partitions[p]!.length), times);
            for (const time of times.slice(0, n)) {
              expect(time).toBeGreaterThanOrEqual(latest - maxAheadMs);
              latest = Math.max(latest, time);
            }
            taken[p]!.push(...times.slice(0, n));
            positions[p]! += n;
          };
          const waiting = () => partitions.flatMap((times, p) => (positions[p]! < times.length ? [p] : []));
          // As the logs serve them: every partition with records waiting once before any again (after each assignment).
          const assign = () => {
            alignment.forget();
            for (const p of waiting().sort(() => random.next() - 0.5)) serve(p);
          };
          assign();
          // Reassigned twice on the way, at most (a reassignment also learns again where each partition stands).
          const reassignments = new Set([random.int(200), random.int(200)]);
          for (let step = 0; waiting().length > 0; step++) {
            expect(step, 'steps before every record is taken').toBeLessThan(20_000);
            if (reassignments.has(step)) assign();
            else serve(waiting()[random.int(waiting().length)]!);
          }
          expect(taken).toEqual(partitions);
        },
      ),
      { numRuns: 300 },
    );
  });
});
