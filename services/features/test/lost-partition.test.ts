/**
 * A member whose write was refused (another member, which held the partition meanwhile, stored a newer
 * state of one of its entities) lets the partition go. With no rebalance to come, it consumes the
 * partition again from its commit and opens it anew there, from the stored states.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore, readFeatureValues, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { source, startMember, user } from './member.js';
import { transactionJson } from './transaction.js';

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

describe('a partition lost to newer writes', () => {
  it('is consumed again from its commit, without a rebalance', async () => {
    const eventLog = new MemoryEventLog();
    await eventLog.ensureTopics([{ name: source.topic, partitions: 1 }]);
    const hourAgo = Date.now() - 3_600_000;
    const value = (i: number) => transactionJson(`e${i}`, hourAgo + i * 1_000);
    const publish = (from: number, to: number) =>
      eventLog.publish(
        source.topic,
        Array.from({ length: to - from }, (_, i) => ({ key: 'u1', value: value(from + i) })),
      );
    const commits: string[] = [];
    const subscribe = eventLog.subscribe.bind(eventLog);
    eventLog.subscribe = async (options) => {
      const subscription = await subscribe(options);
      return {
        ...subscription,
        commit: async (offsets) => {
          await subscription.commit(offsets);
          commits.push(...offsets.map((o) => o.offset));
        },
      };
    };
    const store = new MemoryOnlineStore();
    const count = async () => {
      const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
      return readFeatureValues(user, fields ?? null, Date.now()).values.count_24h;
    };

    await publish(0, 5);
    const member = await startMember(eventLog, store, stops);
    await waitFor(() => commits.at(-1) === '5', { what: 'the first records committed' });
    // Another member, which held the partition meanwhile, has stored u1 up to offset 11.
    const other = createFeatureProcessor({ store, groups: [user], source, allowedLatenessMs: 300_000 });
    other.open(source.topic, 0, -Infinity);
    const record = (i: number): LogRecord => ({
      topic: source.topic,
      partition: 0,
      offset: String(i),
      key: 'u1',
      value: Buffer.from(value(i)),
      timestamp: Date.now(),
      headers: {},
    });
    await other.process({ topic: source.topic, partition: 0, records: Array.from({ length: 12 }, (_, i) => record(i)) });
    await other.flush();
    expect(await count()).toBe(12);
    // This member applies 5-9 to the state it holds: its write is refused, and it lets the partition go.
    await publish(5, 10);
    await waitFor(async () => (await member.written('fenced')) > 0, { what: 'the refused write' });
    // Its next batch fails; the partition is consumed again from offset 5 with the stored states (5-11 replayed).
    await publish(10, 13);
    await waitFor(() => commits.at(-1) === '13', { what: 'the partition committed to its end' });
    expect(await count()).toBe(13);
    expect(await member.events('replayed')).toBe(7);
  });
});
