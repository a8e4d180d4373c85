/** trackConsumerLag: the lag of each partition a member holds, from its batches. */
import { describe, expect, it } from 'vitest';
import { Gauge, Registry } from 'prom-client';
import { trackConsumerLag } from '../src/consumer-lag.js';
import type { RecordBatch } from '../src/event-log/types.js';

/** A batch of the records from `first` to `last` of partition 0, fetched when the partition ended at `end`. */
const batch = (first: number, last: number, end: number, lastOffset?: number): RecordBatch => ({
  topic: 'predictions',
  partition: 0,
  records: Array.from({ length: last - first + 1 }, (_, i) => ({
    topic: 'predictions',
    partition: 0,
    offset: String(first + i),
    key: null,
    value: null,
    timestamp: 0,
    headers: {},
  })),
  highWatermark: String(end),
  ...(lastOffset === undefined ? {} : { lastOffset: String(lastOffset) }),
});

describe('trackConsumerLag', () => {
  it('counts nothing waiting after a batch whose fetch reached past its last record (a transaction marker)', async () => {
    const lag = new Gauge({ name: 'lag', help: 'lag', labelNames: ['topic', 'partition'], registers: [new Registry()] });
    const tracker = trackConsumerLag(lag);
    // Records 0 to 8, the commit marker at 9.
    expect(tracker.handled(batch(0, 8, 10, 9))).toBe(0);
    expect((await lag.get()).values.map((v) => v.value)).toEqual([0]);
  });
});
