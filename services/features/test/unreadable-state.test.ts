/**
 * A stored entity state the pipeline cannot read (a value damaged, or written by something else) does not stop its
 * partition: the entity's share starts over from its next events, and the pipeline is told (a metric and a warning).
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 11, 2, 12, 0, 0);
const key = (id: string) => ({ group: user.id, entity: 'user_id', id });

const record = (offset: number, userId: string): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: userId,
  value: Buffer.from(transactionJson(`e${offset}`, NOW - 60_000 + offset, { user_id: userId })),
  timestamp: NOW,
  headers: {},
});

describe('an unreadable stored state', () => {
  it('starts its entity over and lets the batch and the other entities of its partition go on', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    // Three bytes where a state belongs: shorter than the binary layout's header.
    await store.write([
      { key: key('u_bad'), partition: 0, offset: '0', set: { s0: Buffer.from([2, 0, 0]) }, remove: [], ttlMs: 86_400_000 },
    ]);
    const told: [string, string][] = [];
    const processor = createFeatureProcessor({
      store,
      groups: [user],
      source,
      allowedLatenessMs: 300_000,
      clock: () => NOW,
      unreadableState: (entity, reason) => told.push([entity, reason]),
    });
    processor.open(source.topic, 0, -Infinity);
    await processor.process({ topic: source.topic, partition: 0, records: [record(1, 'u_ok'), record(2, 'u_bad'), record(3, 'u_ok2')] });
    await processor.flush();
    expect(told).toEqual([[`${user.id} user_id u_bad`, expect.stringMatching(/^stored partition state: /)]]);
    const stored = await store.read(['u_ok', 'u_bad', 'u_ok2'].map(key));
    expect(stored.map((fields) => readFeatureValues(user, fields, NOW).values.count_10m)).toEqual([1, 1, 1]);
  });
});

describe('a state the store cannot write (its key holds something else)', () => {
  it('is reported once and kept; the other entities are written and the offsets committed; each flush writes it again until the key is cleared', async () => {
    const memory = new MemoryOnlineStore(() => NOW);
    let occupied = true;
    // Redis answers a key holding another type this way (writeEntityStates.lua); the embedded store has no such keys.
    const store = Object.assign(Object.create(memory) as MemoryOnlineStore, {
      write: async (writes: Parameters<MemoryOnlineStore['write']>[0]) => {
        const results = await memory.write(writes.filter((w) => !(occupied && w.key.id === 'u_bad')));
        return writes.map((w) =>
          occupied && w.key.id === 'u_bad' ? { applied: false as const, unwritable: 'another type' } : results.shift()!,
        );
      },
    });
    const told: [string, string][] = [];
    const processor = createFeatureProcessor({
      store,
      groups: [user],
      source,
      allowedLatenessMs: 300_000,
      clock: () => NOW,
      // No room for any clean entity: only a state still to be written stays in the process.
      cacheBytes: 1,
      unwritableState: (entity, reason) => told.push([entity, reason]),
    });
    processor.open(source.topic, 0, -Infinity);
    await processor.process({ topic: source.topic, partition: 0, records: [record(1, 'u_ok'), record(2, 'u_bad'), record(3, 'u_ok2')] });
    expect(await processor.flush()).toMatchObject({ written: 2, fenced: 0, unwritable: 1, commits: [{ partition: 0, offset: '4' }] });
    const count = async (id: string) => readFeatureValues(user, (await store.read([key(id)]))[0] ?? null, NOW).values.count_10m;
    expect([await count('u_ok'), await count('u_bad'), await count('u_ok2')]).toEqual([1, null, 1]);
    // Another event of it, and a flush with no new events: refused again, not told again.
    await processor.process({ topic: source.topic, partition: 0, records: [record(4, 'u_bad')] });
    expect(await processor.flush()).toMatchObject({ written: 0, unwritable: 1 });
    expect(await processor.flush()).toMatchObject({ written: 0, unwritable: 1 });
    expect(told).toEqual([[`${user.id} user_id u_bad`, 'another type']]);
    // The key cleared: the next flush writes its whole state, both events.
    occupied = false;
    expect(await processor.flush()).toMatchObject({ written: 1, unwritable: 0 });
    expect(await count('u_bad')).toBe(2);
    expect(await processor.flush()).toMatchObject({ written: 0, unwritable: 0 });
  });
});

describe('a stored offset that is no offset (written by something else)', () => {
  it('is reported as an unreadable state: the entity starts over, and the batch and its partition go on', async () => {
    const memory = new MemoryOnlineStore(() => NOW);
    const store = Object.assign(Object.create(memory) as MemoryOnlineStore, {
      read: async (keys: Parameters<MemoryOnlineStore['read']>[0]) =>
        (await memory.read(keys)).map((fields, i) => (keys[i]!.id === 'u_bad' ? { ...fields, _o0: 'garbage' } : fields)),
    });
    const told: [string, string][] = [];
    const processor = createFeatureProcessor({
      store,
      groups: [user],
      source,
      allowedLatenessMs: 300_000,
      clock: () => NOW,
      unreadableState: (entity, reason) => told.push([entity, reason]),
    });
    processor.open(source.topic, 0, -Infinity);
    await processor.process({ topic: source.topic, partition: 0, records: [record(1, 'u_ok'), record(2, 'u_bad')] });
    expect(await processor.flush()).toMatchObject({ written: 2, fenced: 0, commits: [{ partition: 0, offset: '3' }] });
    expect(told).toEqual([[`${user.id} user_id u_bad`, 'stored offset of partition 0 is no offset: "garbage"']]);
    expect((await memory.read([key('u_bad')]))[0]).toMatchObject({ _o0: '2' });
  });
});
