/**
 * The keyed state in memory is bounded by an estimate of its heap: a flush that leaves more
 * forgets the least recently loaded clean entities, whose next event reads them from the
 * store again. Forgetting never changes a feature (the stored state and its offset are read
 * back), and an entity that keeps getting events stays in memory.
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type EntityKey, type LogRecord, type OnlineStore } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);
const USERS = 300;

/** Event `i` of the stream: users in turn, with `u0` in every batch of 50 (the hot one). */
const userOf = (i: number) => (i % 50 === 0 ? 'u0' : `u${1 + ((i * 7) % (USERS - 1))}`);
const record = (i: number): LogRecord => {
  const ts = NOW - 2 * 3_600_000 + i * 1_000;
  return {
    topic: source.topic,
    partition: 0,
    offset: String(i),
    key: userOf(i),
    value: Buffer.from(
      JSON.stringify({
        event_id: `e${i}`,
        user_id: userOf(i),
        merchant_id: `m${i % 40}`,
        amount: (i % 97) + 0.25,
        currency: 'USD',
        country: i % 3 === 0 ? 'FR' : 'US',
        channel: 'web',
        ts,
      }),
    ),
    timestamp: ts,
    headers: {},
  };
};

/** A store that counts the reads of each entity. */
function countingStore(): { store: OnlineStore; inner: OnlineStore; reads: Map<string, number> } {
  const inner = new MemoryOnlineStore(() => NOW);
  const reads = new Map<string, number>();
  const store: OnlineStore = Object.assign(Object.create(inner) as OnlineStore, {
    read: (keys: EntityKey[]) => {
      for (const key of keys) reads.set(`${key.group}/${key.id}`, (reads.get(`${key.group}/${key.id}`) ?? 0) + 1);
      return inner.read(keys);
    },
  });
  return { store, inner, reads };
}

/** Streams `events` events in batches of 50, flushing after each; returns every entity's features at the end. */
async function run(cacheBytes: number, events = 3_000) {
  const { store, inner, reads } = countingStore();
  const processor = createFeatureProcessor({
    store,
    source,
    groups: example.groups,
    allowedLatenessMs: 5 * 60_000,
    clock: () => NOW,
    cacheBytes,
  });
  processor.open(source.topic, 0, -Infinity);
  const cached: number[] = [];
  for (let from = 0; from < events; from += 50) {
    const records = Array.from({ length: 50 }, (_, k) => record(from + k));
    await processor.process({ topic: source.topic, partition: 0, records });
    await processor.flush();
    cached.push(processor.cacheStats().bytes);
  }
  const at = NOW - 2 * 3_600_000 + events * 1_000;
  const features: Record<string, unknown> = {};
  for (const group of example.groups.filter((g) => g.definition.source === source.name)) {
    const ids =
      group.entity === 'user_id' ? Array.from({ length: USERS }, (_, u) => `u${u}`) : Array.from({ length: 40 }, (_, m) => `m${m}`);
    const stored = await inner.read(ids.map((id) => ({ group: group.id, entity: group.entity, id })));
    ids.forEach((id, k) => (features[`${group.id}/${id}`] = readFeatureValues(group, stored[k] ?? null, at).values));
  }
  return { processor, reads, cached, features };
}

describe('the keyed state’s memory budget', () => {
  it('keeps the estimated heap of the states within the budget after every flush', async () => {
    const budget = 1_500_000;
    const { processor, cached } = await run(budget);
    expect(Math.max(...cached)).toBeLessThanOrEqual(budget);
    expect(processor.cacheStats().evicted).toBeGreaterThan(0);
  });

  it('forgets nothing while the states fit', async () => {
    const { processor, reads } = await run(1 << 30);
    expect(processor.cacheStats().evicted).toBe(0);
    expect(processor.cacheStats().entities).toBe(USERS + 40);
    // Each entity read from the store once, when first seen.
    expect(Math.max(...reads.values())).toBe(1);
  });

  it('gives the same features when states are forgotten and read again', async () => {
    const bounded = await run(1_500_000);
    const unbounded = await run(1 << 30);
    expect(bounded.features).toEqual(unbounded.features);
    const userReads = [...bounded.reads].filter(([key]) => key.startsWith('user_transactions'));
    expect(Math.max(...userReads.map(([, n]) => n))).toBeGreaterThan(1);
  });

  it('keeps an entity that gets events in every batch, forgetting the least recently loaded', async () => {
    const { reads } = await run(1_500_000);
    const hot = reads.get(`${example.groups.find((g) => g.entity === 'user_id')!.id}/u0`);
    expect(hot).toBe(1);
  });
});
