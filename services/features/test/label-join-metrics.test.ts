/**
 * What the label join reports: its consumer group's lag (in the pipeline's metric, by consumer, so
 * that ConsumerLagHigh sees the join stuck, also between batches), and the records it cannot read,
 * counted (not dead-lettered: the pipeline and the monitor do that).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, createRegistry, MemoryEventLog, MemoryOnlineStore } from '@tributary/shared';
import { TransactionMarkerLog } from '../../../test/support/transaction-markers.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { startLabelJoin } from '../src/label-join.js';
import { transactionJson } from './transaction.js';

const topics = { transactions: 'transactions', labels: 'labels', labelledTransactions: 'labelled-transactions' };

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
  vi.useRealTimers();
});

async function start(store = new MemoryOnlineStore(), eventLog = new MemoryEventLog()) {
  const registry = createRegistry({ defaultMetrics: false });
  const join = await startLabelJoin({
    eventLog,
    store,
    topics,
    groupId: 'label-join',
    windowMs: 60_000,
    maxAheadMs: 150_000,
    registry,
    logger: createLogger('test', 'silent'),
  });
  stops.push(() => join.stop());
  const values = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values ?? [];
  const lag = async (topic: string) =>
    (await values('tributary_pipeline_consumer_lag'))
      .filter((v) => v.labels.consumer === 'label-join' && v.labels.topic === topic)
      .reduce((sum, v) => sum + v.value, 0);
  const records = async (outcome: string) =>
    (await values('tributary_label_join_records_total')).find((v) => v.labels.outcome === outcome)?.value ?? 0;
  return { eventLog, lag, records };
}

describe('the label join', () => {
  it('reports its lag: the records behind while its batches fail, none once they are joined', async () => {
    const store = new MemoryOnlineStore();
    const meet = store.meet.bind(store);
    let down = true;
    store.meet = (sides) => (down ? Promise.reject(new Error('store down')) : meet(sides));
    const { eventLog, lag } = await start(store);
    await eventLog.publish(
      'transactions',
      ['e1', 'e2', 'e3'].map((id) => ({ key: 'm1', value: transactionJson(id, Date.now()) })),
    );
    await eventLog.publish('labels', [{ key: 'e1', value: JSON.stringify({ request_id: 'e1', label: 1, ts: Date.now() }) }]);
    await waitFor(async () => (await lag('transactions')) === 3 && (await lag('labels')) === 1, {
      what: 'a lag of the records not joined',
    });

    down = false;
    await waitFor(async () => (await lag('transactions')) === 0 && (await lag('labels')) === 0, { what: 'no lag once joined' });
    expect(eventLog.records('labelled-transactions')).toHaveLength(1);
  });

  it('counts again, every 15 s, the records that pile up behind a batch that never ends', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const store = new MemoryOnlineStore();
    const meet = store.meet.bind(store);
    let stuck = false;
    store.meet = (sides) => (stuck ? new Promise(() => {}) : meet(sides));
    const { eventLog, lag, records } = await start(store);
    const publish = (ids: string[]) =>
      eventLog.publish(
        'transactions',
        ids.map((id) => ({ key: 'm1', value: transactionJson(id, Date.now()) })),
      );
    await publish(['e0']);
    await waitFor(async () => (await records('transaction_remembered')) === 1, { what: 'the first transaction remembered' });
    stuck = true;
    await publish(['e1', 'e2', 'e3']);
    await waitFor(async () => (await lag('transactions')) === 3, { what: 'the batch in flight' });
    // No batch is fetched while this one lasts: only the refresh sees these.
    await publish(['e4', 'e5', 'e6', 'e7', 'e8', 'e9', 'e10']);
    expect(await lag('transactions')).toBe(3);
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(async () => (await lag('transactions')) === 10, { what: 'a lag of the 10 transactions waiting' });
  });

  it('reaches 0 once a fetch reaches the transaction marker that ends a partition, joining nothing for it', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new TransactionMarkerLog();
    const store = new MemoryOnlineStore();
    const meet = store.meet.bind(store);
    let meetings = 0;
    store.meet = (sides) => {
      meetings++;
      return meet(sides);
    };
    const { lag, records } = await start(store, eventLog);
    await eventLog.publish('transactions', [{ key: 'm1', value: transactionJson('e1', Date.now()) }]);
    await waitFor(async () => (await records('transaction_remembered')) === 1 && (await lag('transactions')) === 0, {
      what: 'the transaction remembered',
    });
    // Its transaction's commit marker comes in a fetch of its own.
    await eventLog.endWithMarker('transactions', eventLog.records('transactions')[0]!.partition);
    // Two refreshes begun since (every 15 s): the first has ended.
    const reads = eventLog.endOffsetReads;
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(() => eventLog.endOffsetReads > reads, { what: 'the lag counted again' });
    await vi.advanceTimersByTimeAsync(15_000);
    await waitFor(() => eventLog.endOffsetReads > reads + 1, { what: 'the lag counted again' });
    expect(await lag('transactions')).toBe(0);
    expect(await records('transaction_remembered')).toBe(1);
    // The store not asked about it.
    expect(meetings).toBe(1);
    expect(eventLog.records('labelled-transactions')).toEqual([]);
  });

  it('counts the transactions and labels it cannot read, and dead-letters none', async () => {
    const { eventLog, records } = await start();
    await eventLog.publish('transactions', [
      { key: 'm1', value: '{not json' },
      { key: 'm1', value: transactionJson('e1', Date.now()) },
    ]);
    await eventLog.publish('labels', [
      { key: 'e1', value: JSON.stringify({ request_id: 'e1', label: 'yes' }) },
      { key: 'e1', value: JSON.stringify({ request_id: 'e1', label: 1, ts: Date.now() }) },
    ]);
    await waitFor(async () => (await records('transaction_remembered')) === 1 && (await records('joined')) === 1, {
      what: 'the readable records joined',
    });
    expect(await records('transaction_unreadable')).toBe(1);
    expect(await records('label_unreadable')).toBe(1);
    expect(eventLog.records('dead-letter')).toEqual([]);
  });
});
