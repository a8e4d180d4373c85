/**
 * The consumer lag per partition (`tributary_pipeline_consumer_lag`, behind the ConsumerLagHigh
 * alert): it must grow while batches fail (the store is down), while the time a batch was last
 * handled (`tributary_pipeline_consumed_timestamp_seconds`, ConsumerPartitionsStuck) stays, and
 * while a batch never ends (no batch reports it then: the member counts it again from the
 * partitions' end offsets), and a member must stop reporting the partitions a rebalance gave to another.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore, type StateWrite } from '@tributary/shared';
import { TransactionMarkerLog } from '../../../test/support/transaction-markers.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { source, startMember as start } from './member.js';
import { transactionJson } from './transaction.js';

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

const transactions = (from: number, count: number, userId = 'u1') =>
  Array.from({ length: count }, (_, i) => ({
    key: userId,
    value: transactionJson(`e${from + i}`, Date.now() - 1_000, { user_id: userId }),
  }));

describe('consumer lag', () => {
  it('grows while batches fail because their changes cannot be written', async () => {
    const eventLog = new MemoryEventLog();
    await eventLog.ensureTopics([{ name: source.topic, partitions: 1 }]);
    const store = new MemoryOnlineStore();
    store.write = async (_writes: StateWrite[]) => {
      throw new Error('store down');
    };
    const member = await start(eventLog, store, stops);
    await eventLog.publish(source.topic, transactions(0, 1));
    await waitFor(async () => (await member.events('applied')) === 1 && (await member.lag())['0'] === 0, {
      what: 'the first event applied (its write fails), nothing behind it',
    });
    const handledAt = (await member.consumedAt())['0'];
    expect(handledAt).toBeGreaterThan(0);
    // Read no further while the store is down: these stay behind, and the lag says so.
    await eventLog.publish(source.topic, transactions(1, 30));
    await waitFor(async () => (await member.lag())['0'] === 30, { what: 'a lag of the 30 records not applied', timeoutMs: 3_000 });
    expect(await member.events('applied')).toBe(1);
    // Nor has a batch been handled since (ConsumerPartitionsStuck, should it last).
    expect(await member.consumedAt()).toEqual({ '0': handledAt });
  });

  it('grows between batches while a batch never ends', async () => {
    const eventLog = new MemoryEventLog();
    await eventLog.ensureTopics([{ name: source.topic, partitions: 1 }]);
    const store = new MemoryOnlineStore();
    const read = store.read.bind(store);
    let stuck = false;
    let release: (() => void) | undefined;
    store.read = async (keys) => {
      if (stuck) await new Promise<void>((resolve) => (release = resolve));
      return read(keys);
    };
    // The lag counted again from the partitions' end offsets every 20 ms (15 s by default).
    const member = await start(eventLog, store, stops, { lagRefreshMs: 20 });
    await eventLog.publish(source.topic, transactions(0, 1));
    await waitFor(async () => (await member.events('applied')) === 1 && (await member.lag())['0'] === 0, {
      what: 'the first event applied, nothing behind it',
    });
    // A user not yet in memory: its state is read from the store, which never answers.
    stuck = true;
    await eventLog.publish(source.topic, transactions(1, 5, 'u2'));
    try {
      await waitFor(() => release !== undefined, { what: 'the batch in flight' });
      // No batch is fetched while this one lasts: only the refresh sees these.
      await eventLog.publish(source.topic, transactions(6, 30));
      await waitFor(async () => (await member.lag())['0'] === 35, { what: 'a lag of the 35 records waiting' });
    } finally {
      stuck = false;
      release?.();
    }
    await waitFor(async () => (await member.lag())['0'] === 0, { what: 'the records applied' });
    expect(await member.events('applied')).toBe(36);
  });

  it('reaches 0 once a fetch reaches the transaction marker that ends the partition, which is neither applied nor committed', async () => {
    const eventLog = new TransactionMarkerLog();
    await eventLog.ensureTopics([{ name: source.topic, partitions: 1 }]);
    const store = new MemoryOnlineStore();
    // The lag counted again from the partitions' end offsets every 20 ms (15 s by default).
    const member = await start(eventLog, store, stops, { lagRefreshMs: 20 });
    const committed = async () => (await eventLog.committedOffsets(`features-${source.name}`, source.topic))[0]!.offset;
    await eventLog.publish(source.topic, transactions(0, 2));
    await waitFor(async () => (await member.lag())['0'] === 0 && (await committed()) === '2', {
      what: 'the events applied and committed',
    });
    const written = await member.written('written');
    // The records' transaction commits: its marker, at 2, comes in a fetch of its own.
    await eventLog.endWithMarker(source.topic, 0);
    // Two refreshes begun since: the first has ended.
    const reads = eventLog.endOffsetReads;
    await waitFor(() => eventLog.endOffsetReads >= reads + 2, { what: 'the lag counted again' });
    expect(await member.lag()).toEqual({ '0': 0 });
    expect(await member.events('applied')).toBe(2);
    expect(await member.written('written')).toBe(written);
    // Committed past the records applied, as before: a replay from there fetches the marker again.
    expect(await committed()).toBe('2');
  });

  it('is no longer reported by a member for the partitions a rebalance gave to another', async () => {
    const eventLog = new MemoryEventLog();
    await eventLog.ensureTopics([{ name: source.topic, partitions: 4 }]);
    const store = new MemoryOnlineStore();
    // Users on every partition.
    const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
    const publishAll = (from: number) =>
      eventLog.publish(
        source.topic,
        users.flatMap((id, i) => transactions(from + i, 1, id)),
      );
    const first = await start(eventLog, store, stops);
    await publishAll(0);
    await waitFor(async () => (await first.events('applied')) === users.length, { what: 'the first member applying every partition' });
    expect(Object.keys(await first.lag()).sort()).toEqual(['0', '1', '2', '3']);
    const second = await start(eventLog, store, stops);
    await publishAll(1_000);
    // At least: events the first member had applied but not yet flushed when it gave a partition away are applied
    // again by the second (a slow flush on a loaded machine), as after a crash.
    await waitFor(async () => (await first.events('applied')) + (await second.events('applied')) >= 2 * users.length, {
      what: 'both members applying their partitions',
    });
    const firsts = Object.keys(await first.lag());
    const seconds = Object.keys(await second.lag());
    // Each partition reported by one member only.
    expect([...firsts, ...seconds].sort()).toEqual(['0', '1', '2', '3']);
    expect(firsts.length).toBe(2);
  });
});
