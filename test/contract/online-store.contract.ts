/**
 * The online-store contract (Feast's universal store tests): every implementation must
 * pass it. Run by memory.test.ts (unit) and redis.int.test.ts (integration).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyEvent,
  compileFeatureGroup,
  emptyState,
  encodeJsonPartitionState,
  parsePartitionState,
  readFeatureValues,
  stateFields,
  storedOffset,
  type EntityKey,
  type FeatureGroup,
  type OnlineStore,
  type PartitionState,
  type StateWrite,
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

type Click = { time: number; price: number; page: string };

function stateOf(clicks: Click[], state: PartitionState = emptyState()): PartitionState {
  for (const c of clicks) applyEvent(group, state, { time: c.time, values: c });
  return state;
}

function write(key: EntityKey, state: PartitionState, options: Partial<StateWrite> = {}): StateWrite {
  const partition = options.partition ?? 0;
  return { key, partition, offset: '0', set: stateFields(partition, state), remove: [], ttlMs: group.ttlMs, ...options };
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
    });

    it('stores a state with its offset and serves the merged features', async () => {
      const state = stateOf([
        { time: NOW - 30 * 60_000, price: 10, page: 'a' },
        { time: NOW - 5 * 60_000, price: 4, page: 'b' },
        { time: NOW - 2 * 60_000, price: 7, page: 'c' },
      ]);
      expect(await store.write([write(key, state, { offset: '2' })])).toEqual([{ applied: true }]);
      const [fields] = await store.read([key]);
      const { values, newestEventTime } = readFeatureValues(group, fields ?? null, NOW);
      expect(values).toMatchObject({
        count_10m: 2,
        count_1h: 3,
        price_sum_1h: 21,
        price_min_1h: 4,
        price_max_1h: 10,
        price_mean_1h: 7,
        page_last_1h: 'c',
      });
      expect(values.price_stddev_1h).toBeCloseTo(Math.sqrt(6), 12);
      expect(newestEventTime).toBe(NOW - 2 * 60_000);
      expect(storedOffset(0, fields ?? null)).toBe('2');
      // What is stored is what was written: the pipeline can resume from it.
      expect(parsePartitionState(0, fields!).tiles).toEqual(state.tiles);
    });

    it('keeps the newest event time of a partition, and leaves its event ids out of the stored state', async () => {
      const state = emptyState();
      const clicks = ['e1', 'e|2', 'e"3\\'].map((id, i) => ({ id, time: NOW - i * 60_000, values: { price: i, page: `p${i}` } }));
      for (const click of clicks) {
        applyEvent(group, state, click);
        // The recent ids a state written by an earlier version holds.
        state.seen.set(click.id, click.time);
      }
      await store.write([write(key, state, { partition: 2, offset: '3' })]);
      const [fields] = await store.read([key]);
      expect(parsePartitionState(2, fields!)).toEqual({ ...state, seen: new Map() });
      expect(parsePartitionState(2, fields!).newest).toBe(NOW);
      expect(parsePartitionState(0, fields!)).toEqual(emptyState());
    });

    it("keeps a partition's event-id log: chunks added and removed by name, apart from other logs", async () => {
      const log = `${key.id}:0`;
      const other = `${key.id}:1`;
      const odd: [string, number][] = [
        ['e|1', NOW - 2],
        ['e"2\\', NOW - 1],
        ['ü', NOW],
      ];
      expect(await store.readEventIds(log)).toEqual([]);
      await store.writeEventIds({ log, add: { name: 'a', ids: odd }, remove: [], ttlMs: 60_000 });
      await store.writeEventIds({ log, add: { name: 'b', ids: [['x', NOW + 1]] }, remove: [], ttlMs: 60_000 });
      await store.writeEventIds({ log: other, add: { name: 'a', ids: [['y', NOW]] }, remove: [], ttlMs: 60_000 });
      const byName = (chunks: { name: string }[]) => [...chunks].sort((p, q) => p.name.localeCompare(q.name));
      expect(byName(await store.readEventIds(log))).toEqual([
        { name: 'a', ids: odd },
        { name: 'b', ids: [['x', NOW + 1]] },
      ]);
      await store.writeEventIds({ log, add: null, remove: ['a', 'never'], ttlMs: 60_000 });
      expect(await store.readEventIds(log)).toEqual([{ name: 'b', ids: [['x', NOW + 1]] }]);
      expect(await store.readEventIds(other)).toEqual([{ name: 'a', ids: [['y', NOW]] }]);
      // A large chunk (a replay's flush) in one write.
      const many: [string, number][] = Array.from({ length: 20_000 }, (_, i) => [`id-${i}`, NOW + i]);
      await store.writeEventIds({ log, add: { name: 'c', ids: many }, remove: ['b'], ttlMs: 60_000 });
      expect(await store.readEventIds(log)).toEqual([{ name: 'c', ids: many }]);
    });

    it('expires an event-id log after its ttl', async () => {
      const log = `${key.id}:expiring`;
      await store.writeEventIds({ log, add: { name: 'a', ids: [['e', NOW]] }, remove: [], ttlMs: 300 });
      expect(await store.readEventIds(log)).toHaveLength(1);
      await waitFor(async () => (await store.readEventIds(log)).length === 0, { timeoutMs: 5_000, what: 'the log to expire' });
    });

    it('serves state an earlier version wrote in the JSON layout, beside partitions in the binary one', async () => {
      const old = stateOf([{ time: NOW - 60_000, price: 5, page: 'json' }]);
      const current = stateOf([{ time: NOW - 2 * 60_000, price: 7, page: 'binary' }]);
      await store.write([
        write(key, old, { partition: 0, offset: '3', set: { s0: encodeJsonPartitionState(old) } }),
        write(key, current, { partition: 1, offset: '8' }),
      ]);
      const [fields] = await store.read([key]);
      expect(parsePartitionState(0, fields!)).toEqual(old);
      expect(readFeatureValues(group, fields ?? null, NOW).values).toMatchObject({ count_10m: 2, price_sum_1h: 12, page_last_1h: 'json' });
    });

    it("keeps each source partition's share apart and merges them on read", async () => {
      const first = stateOf([{ time: NOW - 60_000, price: 5, page: 'newer' }]);
      const second = stateOf([{ time: NOW - 20 * 60_000, price: 50, page: 'older' }]);
      await store.write([write(key, first, { partition: 0, offset: '10' }), write(key, second, { partition: 3, offset: '4' })]);
      const [fields] = await store.read([key]);
      expect([storedOffset(0, fields ?? null), storedOffset(3, fields ?? null)]).toEqual(['10', '4']);
      const { values } = readFeatureValues(group, fields ?? null, NOW);
      // `last` keeps the newest by event time, whichever partition it came from.
      expect(values).toMatchObject({ count_1h: 2, price_sum_1h: 55, price_min_1h: 5, price_max_1h: 50, page_last_1h: 'newer' });
      expect(values.price_mean_1h).toBeCloseTo(27.5, 12);
      expect(values.price_stddev_1h).toBeCloseTo(22.5, 12);
    });

    it("overwrites a partition's state with absolute values: writing the same state twice counts nothing twice", async () => {
      const state = stateOf([{ time: NOW - 60_000, price: 5, page: 'a' }]);
      await store.write([write(key, state, { offset: '7' })]);
      expect(await store.write([write(key, state, { offset: '7' })])).toEqual([{ applied: true }]);
      stateOf([{ time: NOW - 30_000, price: 1, page: 'b' }], state);
      await store.write([write(key, state, { offset: '8' })]);
      const [fields] = await store.read([key]);
      expect(readFeatureValues(group, fields ?? null, NOW).values).toMatchObject({ count_10m: 2, price_sum_1h: 6 });
    });

    it('refuses a state older than the stored one (a writer that lost the partition), leaving the state unchanged', async () => {
      await store.write([write(key, stateOf([{ time: NOW - 60_000, price: 5, page: 'a' }]), { offset: '7' })]);
      const before = await store.read([key]);
      const stale = write(key, stateOf([{ time: NOW - 50_000, price: 99, page: 'z' }]), { offset: '6' });
      expect(await store.write([stale])).toEqual([{ applied: false, storedOffset: '7' }]);
      expect(await store.read([key])).toEqual(before);
      // Another partition's offsets are its own.
      expect(await store.write([{ ...stale, partition: 1, set: stateFields(1, stateOf([])) }])).toEqual([{ applied: true }]);
    });

    it('compares offsets as numbers, not as text', async () => {
      await store.write([write(key, stateOf([{ time: NOW, price: 1, page: 'a' }]), { offset: '9' })]);
      expect(await store.write([write(key, stateOf([{ time: NOW, price: 2, page: 'b' }]), { offset: '10' })])).toEqual([{ applied: true }]);
    });

    it('applies a batch of writes to several entities, each on its own', async () => {
      const other: EntityKey = { ...key, id: `${key.id}-other` };
      await store.write([write(other, stateOf([{ time: NOW, price: 2, page: 'b' }]), { offset: '5' })]);
      const results = await store.write([
        write(key, stateOf([{ time: NOW, price: 1, page: 'a' }]), { offset: '1' }),
        write(other, stateOf([{ time: NOW, price: 3, page: 'c' }]), { offset: '4' }),
      ]);
      expect(results).toEqual([{ applied: true }, { applied: false, storedOffset: '5' }]);
    });

    it('answers a large batch mixing partitions, offsets, TTLs and field sets, in the order of its writes', async () => {
      // More entities than one script call takes, as a flush of several partitions writes them.
      const keys = Array.from({ length: 250 }, (_, i): EntityKey => ({ ...key, id: `${key.id}-${i}` }));
      const refused = new Set([3, 104, 205, 249]);
      await store.write(
        [...refused].map((i) => write(keys[i]!, stateOf([{ time: NOW, price: 1, page: 'a' }]), { partition: i % 3, offset: '900' })),
      );
      const writes = keys.map((k, i) => {
        const partition = i % 3;
        const state = stateOf(Array.from({ length: (i % 5) + 1 }, () => ({ time: NOW - 60_000, price: i, page: `p${i}` })));
        const options: Partial<StateWrite> = { partition, offset: String(100 + (i % 2)), ttlMs: i % 4 === 0 ? 60_000 : group.ttlMs };
        // Some with more fields to set, or to remove: not the flush's usual single field.
        if (i % 7 === 0) options.set = { ...stateFields(partition, state), extra: `x${i}` };
        if (i % 11 === 0) options.remove = ['gone'];
        return write(k, state, options);
      });
      const results = await store.write(writes);
      expect(results).toEqual(keys.map((_, i) => (refused.has(i) ? { applied: false, storedOffset: '900' } : { applied: true })));
      const stored = await store.read(keys);
      stored.forEach((fields, i) => {
        const partition = i % 3;
        if (refused.has(i)) {
          expect(storedOffset(partition, fields)).toBe('900');
          return;
        }
        expect(storedOffset(partition, fields)).toBe(String(100 + (i % 2)));
        expect(readFeatureValues(group, fields, NOW).values).toMatchObject({ count_1h: (i % 5) + 1, price_sum_1h: i * ((i % 5) + 1) });
        if (i % 7 === 0) expect(fields?.extra?.toString()).toBe(`x${i}`);
      });
    });

    it('applies the writes of one entity in a batch in their order', async () => {
      const first = stateOf([{ time: NOW - 60_000, price: 1, page: 'first' }]);
      const second = stateOf([{ time: NOW - 30_000, price: 2, page: 'second' }]);
      const third = stateOf([{ time: NOW - 10_000, price: 4, page: 'third' }]);
      const results = await store.write([
        write(key, first, { offset: '1' }),
        // Another field and a removal: not a flush's usual write, and the same entity.
        write(key, second, { offset: '2', set: { ...stateFields(0, second), extra: 'x' }, remove: ['gone'] }),
        write(key, third, { offset: '3' }),
      ]);
      expect(results).toEqual([{ applied: true }, { applied: true }, { applied: true }]);
      const [fields] = await store.read([key]);
      expect(storedOffset(0, fields ?? null)).toBe('3');
      expect(readFeatureValues(group, fields ?? null, NOW).values).toMatchObject({ count_1h: 1, price_sum_1h: 4, page_last_1h: 'third' });
    });

    it('answers reads asked for at once (a turn of many requests) each with its own entities, in order', async () => {
      const ids = Array.from({ length: 30 }, (_, i) => ({ ...key, id: `${key.id}-${i}` }));
      // Entity i holds i + 1 clicks; every third is never written.
      const written = ids.filter((_, i) => i % 3 !== 0);
      await store.write(
        written.map((k) =>
          write(k, stateOf(Array.from({ length: Number(k.id.split('-').pop()) + 1 }, () => ({ time: NOW - 60_000, price: 1, page: 'p' })))),
        ),
      );
      const count = (fields: Awaited<ReturnType<OnlineStore['read']>>[number]) =>
        fields === null ? null : readFeatureValues(group, fields, NOW).values.count_10m;
      // Reads of different sizes, all started before any answers, some naming an entity twice.
      const asked = Array.from({ length: 12 }, (_, r) =>
        [ids[(r * 7) % 30]!, ids[(r * 11 + 1) % 30]!, ids[(r * 7) % 30]!].slice(0, 1 + (r % 3)),
      );
      const answers = await Promise.all([...asked.map((keys) => store.read(keys)), store.read([])]);
      expect(answers.pop()).toEqual([]);
      answers.forEach((answer, r) => {
        expect(answer.map(count)).toEqual(
          asked[r]!.map((k) => {
            const i = Number(k.id.split('-').pop());
            return i % 3 === 0 ? null : i + 1;
          }),
        );
      });
    });

    it('keeps entities of different types and groups apart', async () => {
      const merchant: EntityKey = { group: group.id, entity: 'merchant_id', id: key.id };
      const otherGroup: EntityKey = { group: 'clicks:v2', entity: 'user_id', id: key.id };
      await store.write([write(key, stateOf([{ time: NOW, price: 1, page: 'a' }]), { offset: '1' })]);
      expect(await store.read([merchant, otherGroup])).toEqual([null, null]);
    });

    it('removes the fields a write names', async () => {
      const state = stateOf([{ time: NOW - 60_000, price: 1, page: 'new' }]);
      await store.write([write(key, state, { offset: '1', set: { ...stateFields(0, state), s7: 'obsolete', x: 'y' } })]);
      expect(Object.keys((await store.read([key]))[0] ?? {})).toEqual(expect.arrayContaining(['s7', 'x']));
      await store.write([write(key, state, { offset: '2', remove: ['s7', 'x'] })]);
      const [fields] = await store.read([key]);
      expect(fields).not.toHaveProperty('s7');
      expect(fields).not.toHaveProperty('x');
      expect(readFeatureValues(group, fields ?? null, NOW).values.count_10m).toBe(1);
    });

    it("never shortens an entity's ttl: a write with less of it leaves the longer one an earlier write gave", async () => {
      // One write per script: the flush's (one state field) and the other (several fields, removals).
      const other = { ...key, id: `${key.id}-fields` };
      const state = stateOf([{ time: NOW, price: 1, page: 'a' }]);
      await store.write([write(key, state, { offset: '1', ttlMs: 60_000 }), write(other, state, { offset: '1', ttlMs: 60_000 })]);
      await store.write([
        write(key, state, { partition: 1, offset: '1', ttlMs: 300 }),
        write(other, state, { partition: 1, offset: '1', ttlMs: 300, set: { ...stateFields(1, state), extra: 'x' }, remove: ['gone'] }),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const [kept, keptOther] = await store.read([key, other]);
      expect(storedOffset(1, kept!)).toBe('1');
      expect(storedOffset(1, keptOther!)).toBe('1');
    });

    it('expires an entity after its ttl', async () => {
      await store.write([write(key, stateOf([{ time: NOW, price: 1, page: 'a' }]), { offset: '1', ttlMs: 300 })]);
      expect((await store.read([key]))[0]).not.toBeNull();
      await waitFor(async () => (await store.read([key]))[0] === null, { timeoutMs: 5_000, what: 'the entity to expire' });
    });

    it('remembers values until their ttl, recalls them in order and forgets them', async () => {
      const a = `${key.id}:a`;
      const b = `${key.id}:b`;
      await store.remember([
        { key: a, value: 'first', ttlMs: 60_000 },
        { key: b, value: 'short', ttlMs: 300 },
      ]);
      expect(await store.recall([b, a, `${key.id}:none`])).toEqual(['short', 'first', null]);
      await store.remember([{ key: a, value: 'second', ttlMs: 60_000 }]);
      expect(await store.recall([a])).toEqual(['second']);
      await waitFor(async () => (await store.recall([b]))[0] === null, { timeoutMs: 5_000, what: 'the short value to expire' });
      await store.forget([a]);
      expect(await store.recall([a])).toEqual([null]);
    });

    it('meets the sides of a pair: each finds the other once it is there, and is kept unless it found it (or is kept always)', async () => {
      const pair = `${key.id}:pair`;
      const txn = { pair, side: 'txn', other: 'lbl', value: 'm1', ttlMs: 60_000, keep: true };
      const lbl = { pair, side: 'lbl', other: 'txn', value: 'label', ttlMs: 60_000 };
      // The label first: it waits; the transaction finds it and is kept.
      expect(await store.meet([lbl])).toEqual([null]);
      expect(await store.meet([txn])).toEqual(['label']);
      await store.forgetSides([{ pair, side: 'lbl' }]);
      // A label after its transaction finds it and is not kept.
      expect(await store.meet([lbl])).toEqual(['m1']);
      expect(await store.meet([{ ...txn, value: 'm2' }])).toEqual([null]);
      // Sides of other pairs, and short-lived ones, do not meet.
      const other = `${key.id}:other`;
      expect(
        await store.meet([
          { ...lbl, pair: other, ttlMs: 300 },
          { ...txn, pair: `${key.id}:third` },
        ]),
      ).toEqual([null, null]);
      await waitFor(async () => (await store.meet([{ ...txn, pair: other }]))[0] === null, {
        timeoutMs: 5_000,
        what: 'the short side to expire',
      });
      // The old names (`remember`) and the sides of pairs are apart.
      expect(await store.recall([`txn:${pair}`, `lbl:${pair}`])).toEqual([null, null]);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
