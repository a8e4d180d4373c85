/**
 * The consumer lag per partition (`tributary_pipeline_consumer_lag`, behind the ConsumerLagHigh
 * alert): it must grow while batches fail (the store is down), and a member must stop reporting
 * the partitions a rebalance gave to another.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, createRegistry, fraud, MemoryEventLog, MemoryOnlineStore, type StateWrite } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { startFeaturePipeline } from '../src/pipeline.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const source = example.sources.find((s) => s.topic === 'transactions')!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

async function startMember(eventLog: MemoryEventLog, store: MemoryOnlineStore) {
  const registry = createRegistry({ defaultMetrics: false });
  const pipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: [source],
    groups: [user],
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry,
    logger: createLogger('test', 'warn', { write: () => {} }),
    flushIntervalMs: 5,
  });
  stops.push(() => pipeline.stop());
  const lag = async () =>
    Object.fromEntries(
      ((await registry.getSingleMetric('tributary_pipeline_consumer_lag')?.get())?.values ?? []).map((v) => [
        String(v.labels.partition),
        v.value,
      ]),
    );
  const applied = async () =>
    ((await registry.getSingleMetric('tributary_pipeline_events_total')?.get())?.values ?? [])
      .filter((v) => v.labels.outcome === 'applied')
      .reduce((sum, v) => sum + v.value, 0);
  return { lag, applied };
}

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
    const member = await startMember(eventLog, store);
    await eventLog.publish(source.topic, transactions(0, 1));
    await waitFor(async () => (await member.applied()) === 1 && (await member.lag())['0'] === 0, {
      what: 'the first event applied (its write fails), nothing behind it',
    });
    // Read no further while the store is down: these stay behind, and the lag says so.
    await eventLog.publish(source.topic, transactions(1, 30));
    await waitFor(async () => (await member.lag())['0'] === 30, { what: 'a lag of the 30 records not applied', timeoutMs: 3_000 });
    expect(await member.applied()).toBe(1);
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
    const first = await startMember(eventLog, store);
    await publishAll(0);
    await waitFor(async () => (await first.applied()) === users.length, { what: 'the first member applying every partition' });
    expect(Object.keys(await first.lag()).sort()).toEqual(['0', '1', '2', '3']);
    const second = await startMember(eventLog, store);
    await publishAll(1_000);
    await waitFor(async () => (await first.applied()) + (await second.applied()) === 2 * users.length, {
      what: 'both members applying their partitions',
    });
    const firsts = Object.keys(await first.lag());
    const seconds = Object.keys(await second.lag());
    // Each partition reported by one member only.
    expect([...firsts, ...seconds].sort()).toEqual(['0', '1', '2', '3']);
    expect(firsts.length).toBe(2);
  });
});
