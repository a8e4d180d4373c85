/**
 * A write refused because a newer state was stored (fenced): another member owns the
 * partition, or did while this one went on. This process then lets the partition go: it
 * writes and commits nothing more of it, and its batches fail until it is opened again from its commit.
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type LogRecord, type OnlineStore, type StateWrite } from '@tributary/shared';
import { createFeatureProcessor, PartitionLost } from '../src/feature-processor.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const record = (offset: number, id: string): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: 'u1',
  value: Buffer.from(transactionJson(id, NOW - 60_000 + offset)),
  timestamp: NOW,
  headers: {},
});

const processorOn = (store: OnlineStore) => {
  const processor = createFeatureProcessor({ store, groups: [user], source, allowedLatenessMs: 300_000, clock: () => NOW });
  processor.open(source.topic, 0, -Infinity);
  return processor;
};
const batch = (...records: LogRecord[]) => ({ topic: source.topic, partition: 0, records });

describe('a fenced write', () => {
  it('makes the process let the partition go: nothing more of it is written or committed, its batches fail until it is reopened', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    // The writes of this process wait until released.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const written: StateWrite[] = [];
    const gated: OnlineStore = Object.assign(Object.create(store) as MemoryOnlineStore, {
      write: async (writes: StateWrite[]) => {
        await released;
        written.push(...writes);
        return store.write(writes);
      },
    });
    const zombie = processorOn(gated);
    await zombie.process(batch(record(0, 'e0')));
    // Another member, given the partition, goes further and writes u1 at offset 3.
    const owner = processorOn(store);
    await owner.process(batch(record(0, 'e0'), record(1, 'e1'), record(2, 'e2'), record(3, 'e3')));
    await owner.flush();
    // This process's write of u1 at offset 0 is in flight while it applies the next event to u1.
    const fencedFlush = zombie.flush();
    await zombie.process(batch(record(1, 'e1')));
    release();
    const outcome = await fencedFlush;
    expect(outcome).toMatchObject({ written: 0, fenced: 1, commits: [] });
    expect(zombie.cacheStats()).toMatchObject({ entities: 0, bytes: 0 });
    // Its later batches fail; its flushes write and commit nothing of it.
    await expect(zombie.process(batch(record(2, 'e2')))).rejects.toBeInstanceOf(PartitionLost);
    written.length = 0;
    expect(await zombie.flush()).toMatchObject({ written: 0, fenced: 0, commits: [] });
    expect(written).toEqual([]);
    const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
    expect(readFeatureValues(user, fields ?? null, NOW).values.count_24h).toBe(4);
    // Opened again from the commit, it goes on from the stored states.
    zombie.close(source.topic, 0);
    zombie.open(source.topic, 0, -Infinity);
    expect(await zombie.process(batch(record(3, 'e3'), record(4, 'e4')))).toMatchObject({ applied: 1, replayed: 1 });
    expect((await zombie.flush()).commits).toMatchObject([{ offset: '5' }]);
  });
});
