/**
 * The online-store contract (Feast's universal store tests): every implementation must
 * pass it. Run by memory.test.ts (unit) and redis.int.test.ts (integration).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  aggregateEvents,
  compileFeatureGroup,
  readFeatureValues,
  type EntityKey,
  type EntityWrite,
  type FeatureGroup,
  type OnlineStore,
} from '../../shared/src/index.js';
import { uniqueName, waitFor } from '../support/wait-for.js';

const source = { name: 'clicks', topic: 'clicks', keyField: 'user_id', eventTimeField: 'ts', eventIdField: 'id' };
const definition: FeatureGroup = {
  name: 'clicks',
  version: 1,
  source: 'clicks',
  entity: 'user_id',
  aggregations: [
    { column: '*', op: 'count', windows: ['10m', '1h'] },
    { column: 'price', op: 'sum', windows: ['1h'] },
    { column: 'price', op: 'min', windows: ['1h'] },
    { column: 'price', op: 'max', windows: ['1h'] },
    { column: 'price', op: 'mean', windows: ['1h'] },
    { column: 'price', op: 'stddev', windows: ['1h'] },
    { column: 'page', op: 'last', windows: ['1h'] },
  ],
  ttl: '1d',
};
const group = compileFeatureGroup(definition, [source]);
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);

function write(key: EntityKey, events: { time: number; price: number; page: string }[], options: Partial<EntityWrite> = {}): EntityWrite {
  return {
    key,
    stream: 'clicks:0',
    expectedOffset: null,
    offset: '0',
    updates: aggregateEvents(
      group,
      events.map((e) => ({ time: e.time, values: e })),
    ),
    newestEventTime: Math.max(...events.map((e) => e.time)),
    ttlMs: group.ttlMs,
    pruneBefore: new Map(),
    ...options,
  };
}

export function onlineStoreContract(name: string, makeStore: () => Promise<OnlineStore>): void {
  describe(`online store contract: ${name}`, () => {
    let store: OnlineStore;
    let key: EntityKey;
    beforeEach(async () => {
      store = await makeStore();
      key = { group: group.id, entity: 'user_id', id: uniqueName('u') };
    });
    afterEach(async () => {
      await store.close();
    });

    it('reads nothing for an entity never written', async () => {
      expect(await store.read([key])).toEqual([null]);
      expect(await store.readProgress([{ key, stream: 'clicks:0' }])).toEqual([null]);
    });

    it('applies a write and serves the merged features', async () => {
      const events = [
        { time: NOW - 30 * 60_000, price: 10, page: 'a' },
        { time: NOW - 5 * 60_000, price: 4, page: 'b' },
        { time: NOW - 2 * 60_000, price: 7, page: 'c' },
      ];
      expect(await store.write([write(key, events, { offset: '2' })])).toEqual([{ applied: true }]);
      const [fields] = await store.read([key]);
      const { values, newestEventTime } = readFeatureValues(group, fields ?? null, NOW);
      expect(values).toMatchObject({ count_10m: 2, count_1h: 3, price_sum_1h: 21, price_min_1h: 4, price_max_1h: 10, page_last_1h: 'c' });
      expect(newestEventTime).toBe(NOW - 2 * 60_000);
      expect(await store.readProgress([{ key, stream: 'clicks:0' }])).toEqual(['2']);
    });

    it('merges successive writes with each component merge kind', async () => {
      await store.write([write(key, [{ time: NOW - 60_000, price: 5, page: 'newer' }], { offset: '0' })]);
      const older = write(key, [{ time: NOW - 20 * 60_000, price: 50, page: 'older' }], { expectedOffset: '0', offset: '1' });
      expect(await store.write([older])).toEqual([{ applied: true }]);
      const [fields] = await store.read([key]);
      const { values, newestEventTime } = readFeatureValues(group, fields ?? null, NOW);
      // `last` keeps the newest by event time, not by arrival.
      expect(values).toMatchObject({ count_1h: 2, price_sum_1h: 55, price_min_1h: 5, price_max_1h: 50, page_last_1h: 'newer' });
      expect(values.price_mean_1h).toBeCloseTo(27.5, 12);
      expect(values.price_stddev_1h).toBeCloseTo(22.5, 12);
      expect(newestEventTime).toBe(NOW - 60_000);
    });

    it('merges moments exactly where a sum of squares would cancel out', async () => {
      // Three writes into one tile: 1e9, 1e9 + 1, 1e9 + 2 (population stddev sqrt(2/3)).
      for (const [i, price] of [1e9, 1e9 + 1, 1e9 + 2].entries()) {
        const result = await store.write([
          write(key, [{ time: NOW - 60_000, price, page: 'p' }], { expectedOffset: i === 0 ? null : String(i - 1), offset: String(i) }),
        ]);
        expect(result).toEqual([{ applied: true }]);
      }
      const [fields] = await store.read([key]);
      const { values } = readFeatureValues(group, fields ?? null, NOW);
      expect(values.price_mean_1h).toBe(1e9 + 1);
      expect(values.price_stddev_1h).toBeCloseTo(Math.sqrt(2 / 3), 9);
    });

    it('refuses a write whose expected offset is not the stored one, leaving the state unchanged', async () => {
      const first = write(key, [{ time: NOW - 60_000, price: 5, page: 'a' }], { offset: '7' });
      await store.write([first]);
      const before = await store.read([key]);
      // A replay of the same write (expects nothing stored) must not double-count.
      expect(await store.write([first])).toEqual([{ applied: false, storedOffset: '7' }]);
      const stale = write(key, [{ time: NOW - 60_000, price: 5, page: 'a' }], { expectedOffset: '3', offset: '9' });
      expect(await store.write([stale])).toEqual([{ applied: false, storedOffset: '7' }]);
      expect(await store.read([key])).toEqual(before);
    });

    it('keeps the applied offset per source stream', async () => {
      await store.write([write(key, [{ time: NOW, price: 1, page: 'a' }], { stream: 'clicks:0', offset: '5' })]);
      await store.write([write(key, [{ time: NOW, price: 1, page: 'a' }], { stream: 'clicks:1', offset: '2' })]);
      expect(
        await store.readProgress([
          { key, stream: 'clicks:0' },
          { key, stream: 'clicks:1' },
          { key, stream: 'clicks:2' },
        ]),
      ).toEqual(['5', '2', null]);
      const [fields] = await store.read([key]);
      expect(readFeatureValues(group, fields ?? null, NOW).values.count_10m).toBe(2);
    });

    it('applies a batch of writes to several entities, each on its own', async () => {
      const other: EntityKey = { ...key, id: `${key.id}-other` };
      const results = await store.write([
        write(key, [{ time: NOW, price: 1, page: 'a' }], { offset: '1' }),
        write(other, [{ time: NOW, price: 2, page: 'b' }], { expectedOffset: '4', offset: '5' }),
      ]);
      expect(results).toEqual([{ applied: true }, { applied: false, storedOffset: null }]);
      expect(await store.read([other])).toEqual([null]);
    });

    it('keeps entities of different types and groups apart', async () => {
      const merchant: EntityKey = { group: group.id, entity: 'merchant_id', id: key.id };
      const otherGroup: EntityKey = { group: 'clicks:v2', entity: 'user_id', id: key.id };
      await store.write([write(key, [{ time: NOW, price: 1, page: 'a' }], { offset: '1' })]);
      expect(await store.read([merchant, otherGroup])).toEqual([null, null]);
    });

    it('removes tiles older than the prune cutoff', async () => {
      const oldTime = NOW - 3 * 3_600_000;
      const cutoffs = new Map([...group.tiles.keys()].map((tileMs) => [tileMs, NOW - 3_600_000]));
      await store.write([
        write(
          key,
          [
            { time: oldTime, price: 100, page: 'old' },
            { time: NOW - 60_000, price: 1, page: 'new' },
          ],
          { offset: '1', pruneBefore: cutoffs },
        ),
      ]);
      const [fields] = await store.read([key]);
      const tileStarts = Object.keys(fields ?? {})
        .filter((f) => !f.startsWith('_'))
        .map((f) => Number(f.split(':')[1]));
      expect(tileStarts.length).toBeGreaterThan(0);
      expect(Math.min(...tileStarts)).toBeGreaterThanOrEqual(NOW - 3_600_000);
    });

    it('expires an entity after its ttl', async () => {
      await store.write([write(key, [{ time: NOW, price: 1, page: 'a' }], { offset: '1', ttlMs: 300 })]);
      expect((await store.read([key]))[0]).not.toBeNull();
      await waitFor(async () => (await store.read([key]))[0] === null, { timeoutMs: 5_000, what: 'the entity to expire' });
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
