import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createRegistry,
  fraud,
  MemoryEventLog,
  MemoryOnlineStore,
  readFeatureValues,
  type OnlineStore,
  type Registry,
} from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { startLabelJoin } from '../src/label-join.js';
import { startFeaturePipeline, type FeaturePipeline } from '../src/pipeline.js';

const topics = { transactions: 'transactions', labels: 'labels', labelledTransactions: 'labelled-transactions' };
const now = Date.now();
const transaction = (id: string, merchant: string) => ({
  event_id: id,
  user_id: 'u1',
  merchant_id: merchant,
  amount: 10,
  currency: 'USD',
  country: 'US',
  channel: 'web',
  ts: now - 60_000,
});
const label = (id: string, value: 0 | 1) => ({ request_id: id, label: value, ts: now });

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

async function setup(store = new MemoryOnlineStore()) {
  const eventLog = new MemoryEventLog();
  const registry = createRegistry({ defaultMetrics: false });
  const logger = createLogger('test', 'silent');
  const join = await startLabelJoin({ eventLog, store, topics, groupId: 'join', windowMs: 60_000, maxAheadMs: 150_000, registry, logger });
  const example = fraud.fraudExample({ transactions: topics.transactions, labelledTransactions: topics.labelledTransactions });
  const pipeline: FeaturePipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: example.sources,
    groups: example.groups,
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry,
    logger,
    flushIntervalMs: 5,
  });
  stops.push(
    () => join.stop(),
    () => pipeline.stop(),
  );
  const merchantLabels = example.groups.find((g) => g.definition.name === 'merchant_labels')!;
  const fraudRate = async (merchant: string) => {
    const [fields] = await store.read([{ group: merchantLabels.id, entity: 'merchant_id', id: merchant }]);
    return readFeatureValues(merchantLabels, fields ?? null, Date.now()).values;
  };
  return { eventLog, registry, fraudRate };
}

describe('label join', () => {
  it("joins labels to their transaction's merchant, whichever arrives first, into the merchant's fraud rate", async () => {
    const { eventLog, fraudRate } = await setup();
    await eventLog.publish('transactions', [
      { key: 'u1', value: JSON.stringify(transaction('t1', 'm1')) },
      { key: 'u1', value: JSON.stringify(transaction('t2', 'm1')) },
    ]);
    await waitFor(() => eventLog.records('transactions').length === 2);
    // A label after its transaction, and one before it (t3 arrives later).
    await eventLog.publish('labels', [
      { key: 't1', value: JSON.stringify(label('t1', 1)) },
      { key: 't3', value: JSON.stringify(label('t3', 0)) },
    ]);
    await eventLog.publish('labels', [{ key: 't2', value: JSON.stringify(label('t2', 0)) }]);
    await eventLog.publish('transactions', [{ key: 'u1', value: JSON.stringify(transaction('t3', 'm1')) }]);
    const values = await waitFor(
      async () => {
        const v = await fraudRate('m1');
        return v.count_7d === 3 ? v : null;
      },
      { what: 'three labels joined to m1' },
    );
    expect(values.label_mean_7d).toBeCloseTo(1 / 3, 12);
    const joined = eventLog.records('labelled-transactions').map((r) => JSON.parse(r.value!.toString()));
    expect(joined.map((j) => j.event_id).sort()).toEqual(['t1', 't2', 't3']);
    expect(joined.every((j) => j.merchant_id === 'm1')).toBe(true);
  });

  it('counts the label joined first once: one delivered again, or a correction later than the lateness, is not joined again', async () => {
    const { eventLog, registry, fraudRate } = await setup();
    await eventLog.publish('transactions', [
      { key: 'u1', value: JSON.stringify(transaction('t9', 'm2')) },
      { key: 'u1', value: JSON.stringify(transaction('t8', 'm2')) },
    ]);
    const labelled = () =>
      eventLog.records('labelled-transactions').map((r) => JSON.parse(r.value!.toString()) as { event_id: string; label: number });
    // t8 labelled 0, then t9 labelled 1 ten minutes later (the pipeline's allowed lateness is 5).
    await eventLog.publish('labels', [{ key: 't8', value: JSON.stringify({ ...label('t8', 0), ts: now - 600_000 }) }]);
    await waitFor(() => labelled().length === 1, { what: "t8's label joined" });
    await eventLog.publish('labels', [{ key: 't9', value: JSON.stringify(label('t9', 1)) }]);
    await waitFor(() => labelled().length === 2, { what: "t9's label joined" });
    // Then t8's label corrected to 1, and t9's delivered again.
    await eventLog.publish('labels', [
      { key: 't8', value: JSON.stringify(label('t8', 1)) },
      { key: 't9', value: JSON.stringify(label('t9', 1)) },
    ]);
    await waitFor(async () => /tributary_label_join_records_total\{outcome="label_repeated"\} 2\n/.test(await registry.metrics()), {
      what: 'both joined again and not published',
    });
    expect(labelled().map((j) => `${j.event_id}=${j.label}`)).toEqual(['t8=0', 't9=1']);
    const values = await waitFor(async () => {
      const v = await fraudRate('m2');
      return v.count_7d === 2 ? v : null;
    });
    expect(values.label_mean_7d).toBe(0.5);
  });

  it('leaves a label stamped after the latest time a date holds to the monitor, which dead-letters it: no labelled transaction', async () => {
    const { eventLog } = await setup();
    await eventLog.publish('transactions', [
      { key: 'u1', value: JSON.stringify(transaction('t10', 'm10')) },
      { key: 'u1', value: JSON.stringify(transaction('t11', 'm10')) },
    ]);
    await waitFor(() => eventLog.records('transactions').length === 2);
    // In one partition, in order: once the second is joined, the first was handled.
    await eventLog.publish('labels', [
      { key: 'k', value: JSON.stringify({ ...label('t10', 1), ts: 9e15 }) },
      { key: 'k', value: JSON.stringify(label('t11', 0)) },
    ]);
    await waitFor(() => eventLog.records('labelled-transactions').length > 0, { what: 'the label on time joined' });
    const joined = eventLog.records('labelled-transactions').map((r) => JSON.parse(r.value!.toString()));
    expect(joined.map((j) => j.event_id)).toEqual(['t11']);
  });

  it('joins sides remembered by the version before (under their old names) after an upgrade', async () => {
    const store = new MemoryOnlineStore();
    await store.remember([
      { key: 'lbl:t6', value: JSON.stringify(label('t6', 1)), ttlMs: 60_000 },
      { key: 'txn:t7', value: 'm7', ttlMs: 60_000 },
    ]);
    const { eventLog } = await setup(store);
    await eventLog.publish('transactions', [{ key: 'u1', value: JSON.stringify(transaction('t6', 'm6')) }]);
    await eventLog.publish('labels', [{ key: 't7', value: JSON.stringify(label('t7', 0)) }]);
    await waitFor(() => eventLog.records('labelled-transactions').length === 2, { what: 'both joined' });
    const joined = eventLog.records('labelled-transactions').map((r) => JSON.parse(r.value!.toString()));
    expect(joined.map((j) => [j.event_id, j.merchant_id, j.label]).sort()).toEqual([
      ['t6', 'm6', 1],
      ['t7', 'm7', 0],
    ]);
    expect(await store.recall(['lbl:t6'])).toEqual([null]);
  });

  it('counts a waiting label something else wrote (not a label) and joins the rest of the batch', async () => {
    const store = new MemoryOnlineStore();
    // Where the join keeps t8's label while it waits: a value that is no label.
    await store.meet([{ pair: 't8', side: 'lbl', other: 'txn', value: 'written by something else', ttlMs: 60_000 }]);
    const { eventLog, registry } = await setup(store);
    await eventLog.publish('labels', [{ key: 't9', value: JSON.stringify(label('t9', 1)) }]);
    await waitFor(async () => /outcome="label_waiting"\} 1\n/.test(await registry.metrics()), { what: 't9 waiting' });
    await eventLog.publish('transactions', [
      { key: 'u1', value: JSON.stringify(transaction('t8', 'm8')) },
      { key: 'u1', value: JSON.stringify(transaction('t9', 'm9')) },
    ]);
    await waitFor(async () => /outcome="stored_label_unreadable"\} 1\n/.test(await registry.metrics()), { what: 't8 counted' });
    await waitFor(() => eventLog.records('labelled-transactions').length === 1, { what: 't9 joined' });
    expect(JSON.parse(eventLog.records('labelled-transactions')[0]!.value!.toString())).toMatchObject({
      event_id: 't9',
      merchant_id: 'm9',
    });
  });

  it('joins a transaction and its label handled at the same moment by two processes', async () => {
    const store = new MemoryOnlineStore();
    const logger = createLogger('test', 'silent');
    const outcomes = async (registry: Registry) => {
      const metric = registry.getSingleMetric('tributary_label_join_records_total');
      return metric ? (await metric.get()).values.reduce((sum, v) => sum + v.value, 0) : 0;
    };
    /** The store as one process sees it: each of its calls waits for `before(call number)`. */
    const seenBy = (before: (call: number) => Promise<unknown>): OnlineStore => {
      let calls = 0;
      return new Proxy(store, {
        get(target, name: keyof OnlineStore) {
          const member = target[name];
          if (typeof member !== 'function') return member;
          return async (...args: unknown[]) => {
            await before(++calls);
            return (member as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    };
    // One process handles the label, the other its transaction, their store calls interleaved: the
    // transaction's first call once the label's first is done, the label's next ones once the transaction's batch is over.
    let labelFirstCallDone!: () => void;
    const labelFirstCall = new Promise<void>((resolve) => (labelFirstCallDone = resolve));
    const transactionRegistry = createRegistry({ defaultMetrics: false });
    const labelRegistry = createRegistry({ defaultMetrics: false });
    const transactionBatchOver = () => waitFor(async () => (await outcomes(transactionRegistry)) > 0, { what: 'the transaction handled' });
    const labelStore = seenBy(async (call) => {
      if (call === 1) setImmediate(labelFirstCallDone);
      else await transactionBatchOver();
    });
    const transactionStore = seenBy(async (call) => {
      if (call === 1) await labelFirstCall;
    });
    const transactionLog = new MemoryEventLog();
    const labelLog = new MemoryEventLog();
    for (const [eventLog, joinStore, registry] of [
      [transactionLog, transactionStore, transactionRegistry],
      [labelLog, labelStore, labelRegistry],
    ] as const) {
      const join = await startLabelJoin({
        eventLog,
        store: joinStore,
        topics,
        groupId: 'join',
        windowMs: 60_000,
        maxAheadMs: 150_000,
        registry,
        logger,
      });
      stops.push(() => join.stop());
    }
    await transactionLog.publish('transactions', [{ key: 'u1', value: JSON.stringify(transaction('t5', 'm5')) }]);
    await labelLog.publish('labels', [{ key: 't5', value: JSON.stringify(label('t5', 1)) }]);
    await waitFor(async () => (await outcomes(transactionRegistry)) > 0 && (await outcomes(labelRegistry)) > 0, { what: 'both handled' });
    const joined = [...transactionLog.records('labelled-transactions'), ...labelLog.records('labelled-transactions')];
    expect(joined.map((r) => JSON.parse(r.value!.toString()))).toMatchObject([{ event_id: 't5', merchant_id: 'm5', label: 1 }]);
  });
});
