/**
 * Which events are duplicates, decided by the rule of watermark.ts alone: an event is a copy
 * when its partition admitted an event with its id and a time within the allowed lateness of
 * the watermark. Not by when flushes forget old ids, and the same in the backfill: per
 * partition, bounded by the lateness.
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type LogRecord, type StateWrite } from '@tributary/shared';
import { backfill } from '../src/backfill.js';
import { createFeatureProcessor, decodeCheckpoint } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const groups = example.groups.filter((g) => g.definition.source === source.name);
const user = groups.find((g) => g.entity === 'user_id')!;
const merchant = groups.find((g) => g.entity === 'merchant_id')!;
const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);
const L = 5 * 60_000;
const T = NOW - 30 * 60_000;

const record = (partition: number, offset: number, id: string, ts: number, userId = 'u1'): LogRecord => ({
  topic: source.topic,
  partition,
  offset: String(offset),
  key: userId,
  value: Buffer.from(
    JSON.stringify({ event_id: id, user_id: userId, merchant_id: 'm1', amount: 10, currency: 'USD', country: 'US', channel: 'web', ts }),
  ),
  timestamp: ts + 1_000,
  headers: {},
});

function pipeline(store = new MemoryOnlineStore(() => NOW)) {
  const processor = createFeatureProcessor({ store, groups, source, allowedLatenessMs: L, clock: () => NOW, confirmsCommits: true });
  const process = (records: LogRecord[]) => processor.process({ topic: source.topic, partition: records[0]!.partition, records });
  const count24h = async (entity: 'user_id' | 'merchant_id', id: string) => {
    const group = entity === 'user_id' ? user : merchant;
    const [fields] = await store.read([{ group: group.id, entity, id }]);
    return readFeatureValues(group, fields ?? null, NOW).values.count_24h;
  };
  return { store, processor, process, count24h };
}

const offline = (partitions: LogRecord[][], entity: 'user_id' | 'merchant_id', id: string) => {
  const result = backfill({ groups, source, allowedLatenessMs: L, partitions, queries: [{ entity, id, at: NOW }], readAt: NOW });
  const group = entity === 'user_id' ? user : merchant;
  return { count24h: result.rows[0]!.features[group.definition.name]!.count_24h, duplicates: result.duplicates };
};

describe('duplicates', () => {
  it('are told per partition: the same id on two partitions is two events, online and in the backfill', async () => {
    const partitions = [[record(0, 0, 'A', T)], [record(1, 0, 'A', T, 'u2')]];
    const { processor, process, count24h } = pipeline();
    processor.open(source.topic, 0, -Infinity);
    processor.open(source.topic, 1, -Infinity);
    for (const records of partitions) expect(await process(records)).toMatchObject({ applied: 1, duplicates: 0 });
    await processor.flush();
    expect(await count24h('merchant_id', 'm1')).toBe(2);
    expect(offline(partitions, 'merchant_id', 'm1')).toEqual({ count24h: 2, duplicates: 0 });
  });

  it('an id used again once its first event is past the lateness is a new event, whenever the flushes run', async () => {
    const records = [record(0, 0, 'A', T), record(0, 1, 'B', T + 2 * L), record(0, 2, 'A', T + 2 * L + 1)];
    for (const flushes of [[], [1], [0, 1, 2]]) {
      const { processor, process, count24h } = pipeline();
      processor.open(source.topic, 0, -Infinity);
      for (let i = 0; i < records.length; i++) {
        await process([records[i]!]);
        if (flushes.includes(i)) await processor.flush();
      }
      await processor.flush();
      expect(await count24h('merchant_id', 'm1'), `flushes after ${flushes.join()}`).toBe(3);
    }
    expect(offline([records], 'merchant_id', 'm1')).toEqual({ count24h: 3, duplicates: 0 });
    // Within the lateness, it is a copy (in the backfill too, where it was one per entity, never forgotten).
    const copy = [record(0, 0, 'A', T), record(0, 1, 'B', T + L), record(0, 2, 'A', T + L + 1)];
    expect(offline([copy], 'merchant_id', 'm1')).toEqual({ count24h: 2, duplicates: 1 });
  });

  it('a replay after a crash decides as the run that crashed: no event is applied to some of its entities only', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const first = pipeline(store);
    first.processor.open(source.topic, 0, -Infinity);
    await first.process([record(0, 0, 'A', T)]);
    const { commits } = await first.processor.flush();
    first.processor.committed(commits);
    // Written, but its commit is refused (a rebalance).
    await first.process([record(0, 1, 'B', T + 2 * L)]);
    await first.processor.flush();
    // A used again: the process dies while its flush has written the user's state but not the merchant's.
    await first.process([record(0, 2, 'A', T + 2 * L + 1)]);
    const write = store.write.bind(store);
    store.write = async (writes: StateWrite[]) => {
      await write(writes.filter((w) => w.key.group === user.id));
      throw new Error('killed');
    };
    await expect(first.processor.flush()).rejects.toThrow('killed');
    store.write = write;
    expect(await first.count24h('user_id', 'u1')).toBe(3);

    // A new process resumes from the commit (offset 1).
    const second = pipeline(store);
    second.processor.open(source.topic, 0, decodeCheckpoint(commits[0]!.metadata ?? null), commits[0]!.offset);
    await second.process([record(0, 1, 'B', T + 2 * L), record(0, 2, 'A', T + 2 * L + 1)]);
    await second.processor.flush();
    expect([await second.count24h('user_id', 'u1'), await second.count24h('merchant_id', 'm1')]).toEqual([3, 3]);
  });
});
