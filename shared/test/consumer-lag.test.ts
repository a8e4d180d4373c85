/**
 * trackConsumerLag: the lag of each partition a member holds, from its batches, and when the
 * member last handled one: a partition whose batch never ends keeps its time while its lag
 * says records wait (the MonitorPartitionsStuck and ConsumerPartitionsStuck alerts).
 */
import { describe, expect, it } from 'vitest';
import { Gauge, Registry } from 'prom-client';
import { trackConsumerLag } from '../src/consumer-lag.js';
import type { RecordBatch } from '../src/event-log/types.js';

function tracked() {
  const registry = new Registry();
  const labelNames = ['topic', 'partition'];
  const lag = new Gauge({ name: 'lag', help: 'lag', labelNames, registers: [registry] });
  const consumedAt = new Gauge({ name: 'consumed', help: 'consumed', labelNames, registers: [registry] });
  let now = 1_000_000;
  const tracker = trackConsumerLag({ lag, consumedAt }, {}, () => now);
  const valuesOf = async (gauge: Gauge) =>
    Object.fromEntries((await gauge.get()).values.map((v) => [`${String(v.labels.topic)}:${String(v.labels.partition)}`, v.value]));
  return {
    tracker,
    advance: (ms: number) => (now += ms),
    lag: () => valuesOf(lag),
    consumedAt: () => valuesOf(consumedAt),
  };
}

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
  it('keeps the time of the last batch handled while a batch is delivered again and again, and moves it when one is handled', async () => {
    const { tracker, advance, lag, consumedAt } = tracked();
    tracker.arrived(batch(0, 9, 10));
    // Begun to hold the partition: from then on.
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_000 });
    advance(5_000);
    tracker.handled(batch(0, 9, 10));
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_005 });
    expect(await lag()).toEqual({ 'predictions:0': 0 });
    // The next batch fails (or never ends) while records keep coming: delivered again, it is not handled.
    advance(60_000);
    tracker.arrived(batch(10, 19, 20));
    advance(600_000);
    tracker.arrived(batch(10, 29, 30));
    expect(await lag()).toEqual({ 'predictions:0': 20 });
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_005 });
    advance(1_000);
    tracker.handled(batch(10, 29, 30));
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_666 });
  });

  it('forgets the time with the lag when a rebalance may have given the partition away, and starts again from its next batch', async () => {
    const { tracker, advance, lag, consumedAt } = tracked();
    tracker.handled(batch(0, 9, 12));
    tracker.forget();
    expect(await lag()).toEqual({});
    expect(await consumedAt()).toEqual({});
    advance(600_000);
    tracker.arrived(batch(10, 11, 12));
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_600 });
  });

  it('counts nothing waiting after a batch whose fetch reached past its last record (a transaction marker)', async () => {
    const { tracker, lag } = tracked();
    // Records 0 to 8, the commit marker at 9.
    expect(tracker.handled(batch(0, 8, 10, 9))).toBe(0);
    expect(await lag()).toEqual({ 'predictions:0': 0 });
  });
});
