import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type LogRecord, type OnlineStore } from '@tributary/shared';
import { createBatchProcessor } from '../src/batch-processor.js';
import { sourceDecoder } from '../src/decode.js';

const example = fraud.fraudExample();
const [userGroup, merchantGroup] = example.groups as [(typeof example.groups)[0], (typeof example.groups)[0]];
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);

function record(offset: number, value: unknown, partition = 0): LogRecord {
  return {
    topic: 'transactions',
    partition,
    offset: String(offset),
    key: 'u_1',
    value: value === null ? null : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
    timestamp: NOW,
    headers: {},
  };
}

const txn = (i: number, minutesAgo: number, amount = 10, user = 'u_1', merchant = 'm_1') => ({
  event_id: `e${i}`,
  user_id: user,
  merchant_id: merchant,
  amount,
  currency: 'USD',
  country: 'US',
  channel: 'web',
  ts: NOW - minutesAgo * 60_000,
});

function processor(store: OnlineStore, allowedLatenessMs = 5 * 60_000) {
  return createBatchProcessor({
    store,
    groups: example.groups,
    decode: sourceDecoder(example.sources[0]!),
    allowedLatenessMs,
    clock: () => NOW,
  });
}

async function features(store: OnlineStore, group = userGroup, id = 'u_1') {
  const [fields] = await store.read([{ group: group.id, entity: group.definition.entity, id }]);
  return readFeatureValues(group, fields ?? null, NOW).values;
}

describe('batch processor', () => {
  it('aggregates a batch into every feature group of its events', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const outcome = await processor(store)({
      topic: 'transactions',
      partition: 0,
      records: [record(0, txn(1, 50, 10)), record(1, txn(2, 5, 30)), record(2, txn(3, 1, 20, 'u_2', 'm_1'))],
    });
    expect(outcome).toMatchObject({ applied: 3, replayed: 0, rejected: [] });
    expect(await features(store)).toMatchObject({ count_10m: 1, count_1h: 2, amount_sum_1h: 40, amount_max_24h: 30, amount_mean_24h: 20 });
    expect(await features(store, merchantGroup, 'm_1')).toMatchObject({ count_1h: 3 });
  });

  it('never double-counts a replayed batch, whole or overlapping (restart after a crash before commit)', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const records = Array.from({ length: 10 }, (_, i) => record(i, txn(i, 10 - i, i + 1)));
    await processor(store)({ topic: 'transactions', partition: 0, records: records.slice(0, 6) });
    const expected = await features(store);
    // A fresh process (no memory of what it did) replays from an older committed offset.
    const restarted = processor(store);
    const replay = await restarted({ topic: 'transactions', partition: 0, records: records.slice(0, 6) });
    expect(replay).toMatchObject({ applied: 0, replayed: 6 });
    expect(await features(store)).toEqual(expected);
    const overlap = await restarted({ topic: 'transactions', partition: 0, records: records.slice(3) });
    expect(overlap).toMatchObject({ applied: 4, replayed: 3 });
    expect((await features(store)).count_1h).toBe(10);
    expect((await features(store)).amount_sum_1h).toBe(55);
  });

  it('sets aside malformed and invalid records with the reason, and applies the rest', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const outcome = await processor(store)({
      topic: 'transactions',
      partition: 0,
      records: [
        record(0, '{not json'),
        record(1, null),
        record(2, { ...txn(2, 1), amount: -1 }),
        record(3, Buffer.from([0xff, 0xfe, 0x00]).toString('latin1')),
        record(4, txn(4, 1)),
      ],
    });
    expect(outcome.applied).toBe(1);
    expect(outcome.rejected.map((r) => [r.record.offset, r.reason])).toEqual([
      ['0', 'malformed'],
      ['1', 'malformed'],
      ['2', 'invalid'],
      ['3', 'malformed'],
    ]);
    expect(outcome.rejected[2]!.detail).toMatch(/amount/);
  });

  it('does not apply events later than the watermark minus the allowed lateness, and says why', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const outcome = await processor(
      store,
      5 * 60_000,
    )({
      topic: 'transactions',
      partition: 0,
      records: [record(0, txn(0, 1)), record(1, txn(1, 4)), record(2, txn(2, 30))],
    });
    expect(outcome.applied).toBe(2);
    expect(outcome.rejected).toHaveLength(1);
    expect(outcome.rejected[0]).toMatchObject({ reason: 'late' });
    expect(outcome.rejected[0]!.detail).toMatch(/older than the watermark/);
    expect((await features(store)).count_1h).toBe(2);
  });

  it('retries an entity whose stored offset moved under it (another writer), without double-counting', async () => {
    const inner = new MemoryOnlineStore(() => NOW);
    let interfered = false;
    const store: OnlineStore = Object.assign(Object.create(inner) as OnlineStore, {
      write: async (writes: Parameters<OnlineStore['write']>[0]) => {
        if (!interfered) {
          interfered = true;
          // A zombie member applies the first event between our read and our write.
          await processor(inner)({ topic: 'transactions', partition: 0, records: [record(0, txn(0, 1))] });
        }
        return inner.write(writes);
      },
      readProgress: inner.readProgress.bind(inner),
      read: inner.read.bind(inner),
    });
    const outcome = await processor(store)({ topic: 'transactions', partition: 0, records: [record(0, txn(0, 1)), record(1, txn(1, 1))] });
    expect(outcome.applied).toBe(1);
    expect((await features(inner)).count_10m).toBe(2);
  });
});
