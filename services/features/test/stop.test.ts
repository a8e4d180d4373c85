/**
 * A stop while the store is down: it settles without the store's calls (which never settle
 * here), and what it did not commit is consumed again by the next run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createRegistry,
  fraud,
  MemoryEventLog,
  MemoryOnlineStore,
  readFeatureValues,
  type OnlineStore,
} from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { startLabelJoin } from '../src/label-join.js';
import { startFeaturePipeline } from '../src/pipeline.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const transaction = (id: string, userId: string) => transactionJson(id, Date.now() - 1_000, { user_id: userId });
const logger = createLogger('test', 'silent');

/** A store whose calls, while it hangs (of the methods named), never settle; `calls` counts those. */
function hangingStore(inner = new MemoryOnlineStore()) {
  const state = { hanging: new Set<string>(), calls: 0 };
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (!state.hanging.has(String(name))) return (value as (...a: unknown[]) => unknown).apply(target, args);
        state.calls++;
        return new Promise(() => {});
      };
    },
  }) as OnlineStore;
  return { store, state, inner };
}

const startPipeline = (eventLog: MemoryEventLog, store: OnlineStore) =>
  startFeaturePipeline({
    eventLog,
    store,
    sources: example.sources.filter((s) => s.topic === 'transactions'),
    groups: [user],
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry: createRegistry({ defaultMetrics: false }),
    logger,
    flushIntervalMs: 5,
    stopFlushMs: 10,
  });

const count = async (store: OnlineStore, userId: string) => {
  const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: userId }]);
  return readFeatureValues(user, fields ?? null, Date.now()).values.count_24h;
};

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

describe('a stop with the store down', () => {
  for (const down of [
    { what: 'while a batch reads its entities', methods: ['read', 'readEventIds', 'write', 'writeEventIds'] },
    { what: 'while the applied batch is written', methods: ['write', 'writeEventIds'] },
  ]) {
    it(`settles ${down.what}, and the next run consumes the uncommitted records again, once`, async () => {
      const eventLog = new MemoryEventLog();
      const { store, state, inner } = hangingStore();
      const first = await startPipeline(eventLog, store);
      await eventLog.publish('transactions', [{ key: 'u1', value: transaction('e1', 'u1') }]);
      await waitFor(async () => (await count(inner, 'u1')) === 1, { what: 'e1 written' });
      await first.flush();

      for (const method of down.methods) state.hanging.add(method);
      await eventLog.publish('transactions', [{ key: 'u2', value: transaction('e2', 'u2') }]);
      await waitFor(() => state.calls > 0, { what: 'a store call that never settles' });
      await first.stop();

      state.hanging.clear();
      const next = await startPipeline(eventLog, store);
      stops.push(() => next.stop());
      await waitFor(async () => (await count(inner, 'u2')) === 1, { what: 'e2 consumed again' });
      await next.flush();
      expect(await count(inner, 'u1')).toBe(1);
    });
  }

  it('settles in the label join while its batch waits for the store, and the next run joins it', async () => {
    const eventLog = new MemoryEventLog();
    const { store, state } = hangingStore();
    const topics = { transactions: 'transactions', labels: 'labels', labelledTransactions: 'labelled-transactions' };
    const start = () =>
      startLabelJoin({
        eventLog,
        store,
        topics,
        groupId: 'join',
        windowMs: 60_000,
        maxAheadMs: 150_000,
        registry: createRegistry({ defaultMetrics: false }),
        logger,
      });
    const first = await start();
    await eventLog.publish('transactions', [{ key: 'm1', value: transaction('e1', 'u1') }]);
    await waitFor(async () => (await store.meet([{ pair: 'e1', side: 'probe', other: 'txn', value: '', ttlMs: 60_000 }]))[0] !== null, {
      what: 'e1 remembered',
    });

    state.hanging.add('meet');
    await eventLog.publish('labels', [{ key: 'e1', value: JSON.stringify({ request_id: 'e1', label: 1, ts: Date.now() }) }]);
    await waitFor(() => state.calls > 0, { what: 'a store call that never settles' });
    await first.stop();

    state.hanging.clear();
    const next = await start();
    stops.push(() => next.stop());
    await waitFor(() => eventLog.records('labelled-transactions').length === 1, { what: 'the label joined by the next run' });
  });
});
