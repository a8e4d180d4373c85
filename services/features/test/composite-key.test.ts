/**
 * A feature group keyed by several fields (user x merchant): the pipeline aggregates each
 * pair apart, the backfill answers for the same pairs, and a prediction's entities name the
 * pair's fields one by one.
 */
import { describe, expect, it } from 'vitest';
import {
  compileFeatureGroup,
  entityKeys,
  fraud,
  MemoryOnlineStore,
  planFeatures,
  readFeatureValues,
  type LogRecord,
} from '@tributary/shared';
import { backfill } from '../src/backfill.js';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);
const pairs = compileFeatureGroup(
  {
    name: 'user_merchant_transactions',
    version: 1,
    source: source.name,
    entity: ['user_id', 'merchant_id'],
    aggregations: [
      { column: '*', op: 'count', windows: ['1h'] },
      { column: 'amount', op: 'sum', windows: ['1h'] },
    ],
    ttl: '1d',
  },
  example.sources,
);

const transactions: [user: string, merchant: string, amount: number, minutesAgo: number][] = [
  ['u1', 'm1', 10, 50],
  ['u1', 'm1', 5, 20],
  ['u1', 'm2', 7, 10],
  ['u2', 'm1', 1, 5],
  ['u1', 'm1', 100, 90], // outside the hour (older than its one-hour window plus a tile)
];
const records: LogRecord[] = transactions.map(([user, merchant, amount, minutesAgo], i) => ({
  topic: source.topic,
  partition: 0,
  offset: String(i),
  key: user,
  value: Buffer.from(
    JSON.stringify({
      event_id: `e${i}`,
      user_id: user,
      merchant_id: merchant,
      amount,
      currency: 'USD',
      country: 'US',
      channel: 'web',
      ts: NOW - minutesAgo * 60_000,
    }),
  ),
  timestamp: 0,
  headers: {},
}));

describe('a composite entity key', () => {
  it('aggregates each (user, merchant) pair apart, online and in the backfill alike', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    const processor = createFeatureProcessor({ store, groups: [pairs], source, allowedLatenessMs: 24 * 3_600_000, clock: () => NOW });
    processor.open(source.topic, 0, -Infinity);
    // In time order, so that none is late.
    const ordered = [...records].sort((a, b) => Number(JSON.parse(String(a.value)).ts) - Number(JSON.parse(String(b.value)).ts));
    const outcome = await processor.process({ topic: source.topic, partition: 0, records: ordered });
    expect(outcome.applied).toBe(5);
    expect((await processor.flush()).written).toBe(3);

    const expected: Record<string, Record<string, number>> = {
      'u1+m1': { count_1h: 2, amount_sum_1h: 15 },
      'u1+m2': { count_1h: 1, amount_sum_1h: 7 },
      'u2+m1': { count_1h: 1, amount_sum_1h: 1 },
    };
    for (const [id, values] of Object.entries(expected)) {
      const [fields] = await store.read([{ group: pairs.id, entity: 'user_id+merchant_id', id }]);
      expect(readFeatureValues(pairs, fields ?? null, NOW).values, id).toEqual(values);
    }
    expect(await store.read([{ group: pairs.id, entity: 'user_id+merchant_id', id: 'u2+m2' }])).toEqual([null]);

    const offline = backfill({
      groups: [pairs],
      source,
      allowedLatenessMs: 24 * 3_600_000,
      partitions: [ordered],
      queries: Object.keys(expected).map((id) => ({ entity: 'user_id+merchant_id', id, at: NOW })),
    });
    expect(offline.rows.map((r) => r.features.user_merchant_transactions)).toEqual(Object.values(expected));
  });

  it('is read for a prediction whose entities name each key field', () => {
    const plan = planFeatures(['user_merchant_transactions:count_1h'], { groups: [pairs], onDemand: [] });
    expect(plan.entities).toEqual(['user_id', 'merchant_id']);
    expect(entityKeys(plan, { user_id: 'u1', merchant_id: 'm2' })).toEqual([
      { group: pairs.id, entity: 'user_id+merchant_id', id: 'u1+m2' },
    ]);
  });
});
