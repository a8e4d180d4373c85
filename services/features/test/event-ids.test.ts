/**
 * Duplicate detection across restarts: each source partition's recent event ids live in the
 * process and in the store's event-id log of that partition (a chunk per flush), not inside
 * the entity states that every flush rewrites and every read fetches.
 */
import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  decodePartitionState,
  emptyState,
  encodePartitionState,
  fraud,
  MemoryOnlineStore,
  readFeatureValues,
  type EntityKey,
  type LogRecord,
  type StateWrite,
} from '@tributary/shared';
import { createFeatureProcessor, decodeCheckpoint } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const LATENESS = 5 * 60_000;
const key: EntityKey = { group: user.id, entity: 'user_id', id: 'u1' };
const LOG = `${source.topic}:0`;

const record = (offset: number, id: string, ts: number, userId = 'u1'): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: userId,
  value: Buffer.from(
    JSON.stringify({ event_id: id, user_id: userId, merchant_id: 'm1', amount: 10, currency: 'USD', country: 'US', channel: 'web', ts }),
  ),
  timestamp: ts,
  headers: {},
});

function processorOn(store: MemoryOnlineStore, watermark = -Infinity) {
  const processor = createFeatureProcessor({
    store,
    groups: [user],
    source,
    allowedLatenessMs: LATENESS,
    clock: () => NOW,
    confirmsCommits: true,
  });
  processor.open(source.topic, 0, watermark);
  return processor;
}

const process = (processor: ReturnType<typeof processorOn>, records: LogRecord[]) =>
  processor.process({ topic: source.topic, partition: 0, records });

const count24h = async (store: MemoryOnlineStore) => {
  const [fields] = await store.read([key]);
  return readFeatureValues(user, fields ?? null, NOW).values.count_24h;
};

const loggedIds = async (store: MemoryOnlineStore) =>
  (await store.readEventIds(LOG)).flatMap((chunk) => chunk.ids.map(([id]) => id)).sort();

describe('event ids kept per source partition', () => {
  it('a duplicate delivered again after a restart, at another offset, is not applied twice', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const first = processorOn(store);
    await process(first, [record(0, 'e1', NOW - 1_000)]);
    await first.flush();
    expect(await loggedIds(store)).toEqual(['e1']);
    // A new process resumes: the producer had sent e1 twice.
    const second = processorOn(store);
    expect(await process(second, [record(1, 'e1', NOW - 1_000), record(2, 'e2', NOW - 500)])).toMatchObject({ applied: 1, duplicates: 1 });
    await second.flush();
    expect(await count24h(store)).toBe(2);
  });

  it('ids of a replay that the stored states already include are seen again, then logged', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const first = processorOn(store);
    await process(first, [record(0, 'e1', NOW - 1_000)]);
    // The states are written, but the process dies before its log is: the log write fails.
    const writeEventIds = store.writeEventIds.bind(store);
    store.writeEventIds = () => Promise.reject(new Error('killed'));
    await expect(first.flush()).rejects.toThrow('killed');
    store.writeEventIds = writeEventIds;
    expect(await loggedIds(store)).toEqual([]);
    // The restart replays from the last commit (offset 0): e1 is found applied, so its copy at offset 1 is a duplicate.
    const second = processorOn(store);
    expect(await process(second, [record(0, 'e1', NOW - 1_000), record(1, 'e1', NOW - 1_000)])).toMatchObject({
      applied: 0,
      replayed: 1,
      duplicates: 1,
    });
    await second.flush();
    expect(await loggedIds(store)).toEqual(['e1']);
    expect(await count24h(store)).toBe(1);
  });

  it('a failed flush logs its ids with the next one', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const processor = processorOn(store);
    await process(processor, [record(0, 'e1', NOW - 1_000)]);
    const write = store.write.bind(store);
    store.write = (writes: StateWrite[]) => Promise.reject(new Error(`refused ${writes.length}`));
    await expect(processor.flush()).rejects.toThrow('refused 1');
    store.write = write;
    await process(processor, [record(1, 'e2', NOW - 500)]);
    await processor.flush();
    expect(await loggedIds(store)).toEqual(['e1', 'e2']);
    expect(await count24h(store)).toBe(2);
  });

  it('the stored state carries no event ids; chunks whose ids are all past the allowed lateness leave the log', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const processor = processorOn(store);
    await process(processor, [record(0, 'old', NOW - 20 * 60_000)]);
    processor.committed((await processor.flush()).commits);
    expect(await loggedIds(store)).toEqual(['old']);
    await process(processor, [record(1, 'new', NOW - 1_000)]);
    // Until the offset of `new` is committed, a replay starts before it and still needs `old`.
    processor.committed((await processor.flush()).commits);
    expect(await loggedIds(store)).toEqual(['new', 'old']);
    await process(processor, [record(2, 'newer', NOW - 900)]);
    await processor.flush();
    expect(await loggedIds(store)).toEqual(['new', 'newer']);
    const [fields] = await store.read([key]);
    expect(decodePartitionState(fields!.s0!).seen.size).toBe(0);
    expect(await count24h(store)).toBe(3);
    // A restart reads the log: `new` is a duplicate still.
    const restarted = processorOn(store, NOW - 1_000);
    expect(await process(restarted, [record(3, 'new', NOW - 1_000)])).toMatchObject({ applied: 0, duplicates: 1 });
  });

  it('without a caller confirming commits (backfills, training sets), a written flush counts as committed', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const processor = createFeatureProcessor({ store, groups: [user], source, allowedLatenessMs: LATENESS, clock: () => NOW });
    processor.open(source.topic, 0, -Infinity);
    await process(processor, [record(0, 'old', NOW - 20 * 60_000)]);
    await processor.flush();
    await process(processor, [record(1, 'new', NOW - 1_000)]);
    await processor.flush();
    await process(processor, [record(2, 'newer', NOW - 900)]);
    await processor.flush();
    // The chunk of `old` left the log: the log does not grow with every event of a long replay.
    expect(await loggedIds(store)).toEqual(['new', 'newer']);
  });

  it('a flush keeps the ids a replay from the last commit needs, though the watermark has moved past their lateness', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const T = NOW - 10 * 60_000;
    const first = processorOn(store);
    await process(first, [record(0, 'e1', T)]);
    const { commits } = await first.flush();
    first.committed(commits);
    // A copy of e1, then an event of another user 6 minutes later (past the lateness of e1).
    expect(await process(first, [record(1, 'e1', T), record(2, 'e2', T + 6 * 60_000, 'u2')])).toMatchObject({ applied: 1, duplicates: 1 });
    // Written, then the process is killed before it commits.
    await first.flush();
    // The replay from the last commit (offset 1, watermark T): the copy of e1 is still a duplicate.
    const second = processorOn(store, decodeCheckpoint(commits[0]!.metadata ?? null));
    expect(await process(second, [record(1, 'e1', T), record(2, 'e2', T + 6 * 60_000, 'u2')])).toMatchObject({
      applied: 0,
      replayed: 1,
      duplicates: 1,
    });
    await second.flush();
    expect(await count24h(store)).toBe(1);
  });

  it('state written by an earlier version, with its ids inside, still detects duplicates; its ids move to the log', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const earlier = emptyState();
    applyEvent(user, earlier, { time: NOW - 1_000, values: { user_id: 'u1', merchant_id: 'm1', amount: 10, ts: NOW - 1_000 } });
    earlier.seen.set('e1', NOW - 1_000);
    await store.write([{ key, partition: 0, offset: '0', set: { s0: encodePartitionState(earlier) }, remove: [], ttlMs: user.ttlMs }]);
    const processor = processorOn(store);
    expect(await process(processor, [record(1, 'e1', NOW - 1_000), record(2, 'e2', NOW - 500)])).toMatchObject({
      applied: 1,
      duplicates: 1,
    });
    await processor.flush();
    expect(await loggedIds(store)).toEqual(['e1', 'e2']);
    const [fields] = await store.read([key]);
    expect(decodePartitionState(fields!.s0!).seen.size).toBe(0);
    expect(await count24h(store)).toBe(2);
  });
});
