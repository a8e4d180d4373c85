import { describe, expect, it } from 'vitest';
import { MemoryEventLog } from '../../src/event-log/memory.js';
import type { Subscription } from '../../src/event-log/types.js';
import { waitFor } from '../../../test/support/wait-for.js';

const records = (from: number, count: number) => Array.from({ length: count }, (_, i) => ({ key: 'k', value: `r${from + i}` }));

/** A group that consumes the topic from the beginning and commits after each batch (what it read, in order). */
async function reader(log: MemoryEventLog, groupId: string): Promise<{ values: string[]; subscription: Subscription }> {
  const values: string[] = [];
  const subscription = await log.subscribe({
    groupId,
    topics: ['t'],
    fromBeginning: true,
    eachBatch: async (batch) => void values.push(...batch.records.map((r) => r.value!.toString())),
  });
  return { values, subscription };
}

describe('the in-memory event log letting go of committed records', () => {
  it('lets go of what every group of the topic has committed past, and a group reading on misses none', async () => {
    const log = new MemoryEventLog({ releaseCommitted: true });
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const first = await reader(log, 'a');
    const second = await reader(log, 'b');
    for (let i = 0; i < 10; i++) {
      await log.publish('t', records(i * 1000, 1000));
      await waitFor(() => first.values.length === (i + 1) * 1000 && second.values.length === (i + 1) * 1000, { what: 'both groups' });
    }
    const { start, end } = (await log.endOffsets('t'))[0]!;
    expect(end).toBe('10000');
    expect(Number(start)).toBeGreaterThanOrEqual(8000);
    expect(log.records('t')).toHaveLength(10000 - Number(start));
    expect(log.records('t')[0]!.offset).toBe(start);
    // Every record reached both groups, in order.
    const all = records(0, 10000).map((r) => r.value);
    expect(first.values).toEqual(all);
    expect(second.values).toEqual(all);
    // A new group from the beginning starts at the first record held, as on Kafka after retention.
    const late = await reader(log, 'late');
    await waitFor(() => late.values.length === 10000 - Number(start), { what: 'the late group' });
    expect(late.values[0]).toBe(`r${start}`);
    await Promise.all([first, second, late].map((g) => g.subscription.stop()));
  });

  it('keeps every record a group of the topic has not committed past, and all of a topic no group reads', async () => {
    const log = new MemoryEventLog({ releaseCommitted: true });
    await log.ensureTopics([
      { name: 't', partitions: 1 },
      { name: 'unread', partitions: 1 },
    ]);
    const reading = await reader(log, 'a');
    // This group's handler never returns: it commits nothing.
    const stuck = await log.subscribe({ groupId: 'stuck', topics: ['t'], fromBeginning: true, eachBatch: () => new Promise(() => {}) });
    for (let i = 0; i < 5; i++) {
      await log.publish('t', records(i * 1000, 1000));
      await log.publish('unread', records(i * 1000, 1000));
      await waitFor(() => reading.values.length === (i + 1) * 1000, { what: 'the reading group' });
    }
    expect(await log.endOffsets('t')).toEqual([{ partition: 0, start: '0', end: '5000' }]);
    expect(log.records('unread')).toHaveLength(5000);
    await reading.subscription.stop();
    void stuck.stop();
  });

  it('keeps every record unless asked to let go', async () => {
    const log = new MemoryEventLog();
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const reading = await reader(log, 'a');
    for (let i = 0; i < 5; i++) {
      await log.publish('t', records(i * 1000, 1000));
      await waitFor(() => reading.values.length === (i + 1) * 1000, { what: 'the reading group' });
    }
    expect(log.records('t')).toHaveLength(5000);
    await reading.subscription.stop();
  });
});
