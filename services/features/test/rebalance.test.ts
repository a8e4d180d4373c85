/**
 * A batch begun before a rebalance whose partition is opened only after it (here: while the
 * committed offset was being read, another member took the partition over, applied the batch's
 * records and more, and committed): the records before that commit are already applied.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore, readFeatureValues, type CommittedOffset } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { source, startMember, user } from './member.js';
import { transactionJson } from './transaction.js';

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

describe('a batch begun before a rebalance', () => {
  it('skips the records before the commit it finds as replayed: none is dead-lettered as late, the commit does not go back', async () => {
    const eventLog = new MemoryEventLog();
    // Two partitions, the records on the second: the member that joins second is given it.
    await eventLog.ensureTopics([{ name: source.topic, partitions: 2 }]);
    const userId = ['u1', 'u2', 'u3', 'u4'].find((id) => {
      const hash = [...id].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x01000193), 0x811c9dc5);
      return (hash >>> 0) % 2 === 1;
    })!;
    const publish = (from: number, ts: number) =>
      eventLog.publish(
        source.topic,
        Array.from({ length: 5 }, (_, i) => ({ key: userId, value: transactionJson(`e${from + i}`, ts + i, { user_id: userId }) })),
      );
    // The first member's first read of a committed offset waits until the other member has committed.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    const subscribe = eventLog.subscribe.bind(eventLog);
    let subscriptions = 0;
    // Offsets committed of the records' partition, by either member, in order.
    const commits: string[] = [];
    eventLog.subscribe = async (options) => {
      const first = subscriptions++ === 0;
      const subscription = await subscribe(options);
      const commit: typeof subscription.commit = async (offsets) => {
        await subscription.commit(offsets);
        for (const o of offsets) if (o.partition === 1) commits.push(o.offset);
      };
      if (!first) return { ...subscription, commit };
      return {
        ...subscription,
        commit,
        committed: async (topic: string, partition: number): Promise<CommittedOffset> => {
          if (!held) {
            held = true;
            await released;
          }
          return subscription.committed(topic, partition);
        },
      };
    };
    const store = new MemoryOnlineStore();
    const hourAgo = Date.now() - 3_600_000;
    await publish(0, hourAgo);
    const first = await startMember(eventLog, store, stops);
    await waitFor(() => held, { what: 'the first member holding a batch of the old records' });
    // The second member joins, is given the partition and applies the old records and then recent ones.
    const second = await startMember(eventLog, store, stops);
    await waitFor(async () => (await second.events('applied')) === 5, { what: 'the old records applied by the second member' });
    await publish(5, Date.now());
    await waitFor(async () => (await second.events('applied')) === 10, { what: 'the recent records applied' });
    await waitFor(() => commits.at(-1) === '10', { what: 'the second member committing the partition to its end' });
    const committedBefore = commits.length;

    release();
    await waitFor(async () => (await first.events('replayed')) + (await first.events('dead_lettered')) === 5, {
      what: 'the held batch handled',
    });
    expect(await first.events('dead_lettered')).toBe(0);
    expect(await first.events('replayed')).toBe(5);
    expect(eventLog.records('dead-letter')).toEqual([]);
    // Had the first member taken the old records, its next flush (every 5 ms) would commit offset 5.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(commits.slice(committedBefore)).toEqual([]);
    const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: userId }]);
    expect(readFeatureValues(user, fields ?? null, Date.now()).values.count_24h).toBe(10);
  });
});
