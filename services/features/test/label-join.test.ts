import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, createRegistry, fraud, MemoryEventLog, MemoryOnlineStore, readFeatureValues } from '@tributary/shared';
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

async function setup() {
  const eventLog = new MemoryEventLog();
  const store = new MemoryOnlineStore();
  const registry = createRegistry({ defaultMetrics: false });
  const logger = createLogger('test', 'silent');
  const join = await startLabelJoin({ eventLog, store, topics, groupId: 'join', windowMs: 60_000, registry, logger });
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
  return { eventLog, fraudRate };
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

  it('counts a label joined twice (a replay) once', async () => {
    const { eventLog, fraudRate } = await setup();
    await eventLog.publish('transactions', [{ key: 'u1', value: JSON.stringify(transaction('t9', 'm2')) }]);
    await waitFor(() => eventLog.records('transactions').length === 1);
    await eventLog.publish('labels', [{ key: 't9', value: JSON.stringify(label('t9', 1)) }]);
    await eventLog.publish('labels', [{ key: 't9', value: JSON.stringify(label('t9', 1)) }]);
    await waitFor(() => eventLog.records('labelled-transactions').length === 2, { what: 'both deliveries joined' });
    const values = await waitFor(async () => {
      const v = await fraudRate('m2');
      return v.count_7d === 1 ? v : null;
    });
    expect(values.label_mean_7d).toBe(1);
    // Still one after everything settled.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await fraudRate('m2')).count_7d).toBe(1);
  });
});
