/**
 * trackConsumerLag: the lag of each partition a member holds, from its batches and, between them,
 * from where the partitions end now, and when the member last handled one: a partition whose batch
 * never ends keeps its time while its lag counts the records that pile up (the
 * MonitorPartitionsStuck and ConsumerPartitionsStuck alerts, ConsumerLagHigh and MonitorLagHigh).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Gauge, Registry } from 'prom-client';
import { trackConsumerLag, type ConsumerLagOptions } from '../src/consumer-lag.js';
import { MemoryEventLog } from '../src/event-log/memory.js';
import type { RecordBatch, Subscription } from '../src/event-log/types.js';
import { createLogger } from '../src/logger.js';
import { waitFor } from '../../test/support/wait-for.js';

const stops: (() => unknown)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  vi.useRealTimers();
});

/** A tracker on gauges of its own; its warnings go to `warnings`. */
function tracked(options: Partial<ConsumerLagOptions> = {}) {
  const registry = new Registry();
  const labelNames = ['topic', 'partition'];
  const lag = new Gauge({ name: 'lag', help: 'lag', labelNames, registers: [registry] });
  const consumedAt = new Gauge({ name: 'consumed', help: 'consumed', labelNames, registers: [registry] });
  let now = 1_000_000;
  const warnings: string[] = [];
  const logger = createLogger('test', 'warn', { write: (line: string) => warnings.push((JSON.parse(line) as { msg: string }).msg) });
  const tracker = trackConsumerLag(
    { lag, consumedAt },
    { eventLog: new MemoryEventLog(), groupId: 'g', logger, clock: () => now, ...options },
  );
  stops.push(() => tracker.stop());
  const valuesOf = async (gauge: Gauge) =>
    Object.fromEntries((await gauge.get()).values.map((v) => [`${String(v.labels.topic)}:${String(v.labels.partition)}`, v.value]));
  return {
    tracker,
    warnings,
    advance: (ms: number) => (now += ms),
    lag: () => valuesOf(lag),
    consumedAt: () => valuesOf(consumedAt),
  };
}

/**
 * A member of group `g` on topic `t` (one partition) that reports its batches to the tracker; a batch
 * begun while `hang` is set never ends until `release`.
 */
async function member(eventLog: MemoryEventLog, tracker: ReturnType<typeof tracked>['tracker']) {
  await eventLog.ensureTopics([{ name: 't', partitions: 1 }]);
  const state = { hang: false, inFlight: false, handled: 0, release: () => {}, subscription: null as Subscription | null };
  const subscription: Subscription = await eventLog.subscribe({
    groupId: 'g',
    topics: ['t'],
    fromBeginning: true,
    eachBatch: async (batch) => {
      tracker.arrived(batch);
      if (state.hang) {
        state.inFlight = true;
        await new Promise<void>((resolve) => (state.release = resolve));
      }
      tracker.handled(batch);
      state.handled += batch.records.length;
    },
  });
  state.subscription = subscription;
  stops.push(async () => {
    state.release();
    await subscription.stop();
  });
  return state;
}

const publish = (eventLog: MemoryEventLog, count: number) =>
  eventLog.publish(
    't',
    Array.from({ length: count }, () => ({ key: 'k', value: 'v' })),
  );

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
  it('counts again, every 15 s, from where the partition ends now, the lag of a partition whose batch never ends', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new MemoryEventLog();
    const { tracker, lag, consumedAt } = tracked({ eventLog });
    const state = await member(eventLog, tracker);
    await publish(eventLog, 1);
    await waitFor(async () => state.handled === 1, { what: 'the first record handled' });
    const handledAt = await consumedAt();
    state.hang = true;
    await publish(eventLog, 5);
    await waitFor(() => state.inFlight, { what: 'the batch that never ends' });
    expect(await lag()).toEqual({ 't:0': 5 });
    // Records keep coming; no fetch reports them.
    await publish(eventLog, 30);
    await vi.advanceTimersByTimeAsync(14_999);
    expect(await lag()).toEqual({ 't:0': 5 });
    await vi.advanceTimersByTimeAsync(1);
    await waitFor(async () => (await lag())['t:0'] === 35, { what: 'the lag counted from the end offset' });
    await publish(eventLog, 10);
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(async () => (await lag())['t:0'] === 45, { what: 'the lag counted again' });
    // No batch handled meanwhile.
    expect(await consumedAt()).toEqual(handledAt);
    state.hang = false;
    state.release();
    await waitFor(async () => state.handled === 46 && (await lag())['t:0'] === 0, { what: 'every record handled' });
  });

  it('stops reporting a partition whose commit another member has moved past its position (it lost the partition unknowingly)', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new MemoryEventLog();
    const { tracker, lag, consumedAt } = tracked({ eventLog });
    const state = await member(eventLog, tracker);
    await publish(eventLog, 1);
    await waitFor(async () => state.handled === 1, { what: 'the first record handled' });
    state.hang = true;
    await publish(eventLog, 5);
    await waitFor(() => state.inFlight, { what: 'the batch that never ends' });
    await publish(eventLog, 30);
    // Its own commit (1, where its stuck batch starts) leaves it the partition.
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(async () => (await lag())['t:0'] === 35, { what: 'the lag counted from the end offset' });
    // Evicted while stuck, it sees no rebalance; the new owner of the partition consumes and commits past it.
    await state.subscription!.commit([{ topic: 't', partition: 0, offset: '20' }]);
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(async () => Object.keys(await lag()).length === 0, { what: 'the partition no longer reported' });
    expect(await consumedAt()).toEqual({});
    // Nor again at the next refresh.
    await publish(eventLog, 10);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(await lag()).toEqual({});
  });

  it('goes on consuming when the offsets cannot be read, and says so once until they can again', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new MemoryEventLog();
    let unreadable = true;
    const endOffsets = (topic: string) => (unreadable ? Promise.reject(new Error('broker unreachable')) : eventLog.endOffsets(topic));
    const committedOffsets = (groupId: string, topic: string) => eventLog.committedOffsets(groupId, topic);
    const { tracker, lag, warnings } = tracked({ eventLog: { endOffsets, committedOffsets } });
    const state = await member(eventLog, tracker);
    await publish(eventLog, 3);
    await waitFor(async () => state.handled === 3, { what: 'the first records handled' });
    await vi.advanceTimersByTimeAsync(3 * 15_000);
    await publish(eventLog, 4);
    await waitFor(async () => state.handled === 7 && (await lag())['t:0'] === 0, { what: 'the next records handled' });
    expect(warnings).toEqual(['consumer lag not refreshed: the offsets of the topic cannot be read']);
    unreadable = false;
    await vi.advanceTimersByTimeAsync(15_000);
    unreadable = true;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(warnings).toHaveLength(2);
  });

  it('keeps, from a refresh that a batch or a rebalance overtook, nothing', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let answer: (end: number) => void = () => {};
    const endOffsets = () =>
      new Promise<{ partition: number; start: string; end: string }[]>(
        (resolve) => (answer = (end) => resolve([{ partition: 0, start: '0', end: String(end) }])),
      );
    // The member's own commit after the batch below.
    const committedOffsets = async () => [{ partition: 0, offset: '20', metadata: null }];
    const { tracker, lag } = tracked({ eventLog: { endOffsets, committedOffsets } });
    tracker.handled(batch(0, 9, 10));
    await vi.advanceTimersByTimeAsync(15_000);
    // The end read (15), then a batch handled that ends further: the end read is older than the batch's, and
    // the commit read, past the position the refresh began from, is the member's own.
    tracker.handled(batch(10, 19, 20));
    answer(15);
    await vi.advanceTimersByTimeAsync(0);
    expect(await lag()).toEqual({ 'predictions:0': 0 });
    // A rebalance while the end is read: the partition is not reported again.
    await vi.advanceTimersByTimeAsync(15_000);
    tracker.forget();
    answer(30);
    await vi.advanceTimersByTimeAsync(0);
    expect(await lag()).toEqual({});
  });

  it('refreshes from the first partition reported on: a consumer that never starts leaves no timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { tracker } = tracked();
    expect(vi.getTimerCount()).toBe(0);
    tracker.handled(batch(0, 9, 10));
    expect(vi.getTimerCount()).toBe(1);
    tracker.stop();
    expect(vi.getTimerCount()).toBe(0);
    // Nor after a stop.
    tracker.handled(batch(10, 19, 20));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sets nothing once stopped, not even from a refresh in flight', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let answer: () => void = () => {};
    const endOffsets = () =>
      new Promise<{ partition: number; start: string; end: string }[]>(
        (resolve) => (answer = () => resolve([{ partition: 0, start: '0', end: '30' }])),
      );
    const { tracker, lag } = tracked({ eventLog: { endOffsets, committedOffsets: async () => [] } });
    tracker.handled(batch(0, 9, 10));
    await vi.advanceTimersByTimeAsync(15_000);
    tracker.stop();
    answer();
    await vi.advanceTimersByTimeAsync(60_000);
    answer();
    expect(await lag()).toEqual({ 'predictions:0': 0 });
    expect(vi.getTimerCount()).toBe(0);
  });

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

  it('handles as it arrives an empty batch (a fetch of a transaction marker only), moving the time handled', async () => {
    const { tracker, advance, lag, consumedAt } = tracked();
    // Records 0 to 8 handled before their transaction's commit marker was written at 9.
    tracker.handled(batch(0, 8, 9));
    advance(60_000);
    const marker: RecordBatch = { topic: 'predictions', partition: 0, records: [], lastOffset: '9', highWatermark: '10' };
    expect(tracker.arrived(marker)).toBe(0);
    expect(await lag()).toEqual({ 'predictions:0': 0 });
    expect(await consumedAt()).toEqual({ 'predictions:0': 1_060 });
  });

  it('counts nothing waiting after a batch whose fetch reached past its last record (a transaction marker)', async () => {
    const { tracker, lag } = tracked();
    // Records 0 to 8, the commit marker at 9.
    expect(tracker.handled(batch(0, 8, 10, 9))).toBe(0);
    expect(await lag()).toEqual({ 'predictions:0': 0 });
  });
});
