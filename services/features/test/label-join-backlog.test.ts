/**
 * The label join and the feature pipeline started on a backlog of transactions and their labels: the
 * labelled transactions come out in about the order of their times, and the `merchant_labels` group
 * counts every one of them (none dead-lettered as late).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createRegistry,
  fraud,
  MemoryEventLog,
  MemoryOnlineStore,
  type DeadLetter,
  type EventLog,
  type LogRecord,
} from '@tributary/shared';
import { labelBacklog, publishBacklog, wrongFraudRates } from '../../../test/support/label-backlog.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { startLabelJoin } from '../src/label-join.js';
import { startFeaturePipeline } from '../src/pipeline.js';

const topics = { transactions: 'transactions', labels: 'labels', labelledTransactions: 'labelled-transactions' };
const allowedLatenessMs = 300_000;

/** The event log as a consumer of it sees it, counting each read of a record's value (a decoding). */
function countingValueReads(eventLog: EventLog): { eventLog: EventLog; reads: () => number } {
  let reads = 0;
  const counted = (record: LogRecord): LogRecord =>
    Object.defineProperty({ ...record }, 'value', {
      enumerable: true,
      get: () => {
        reads++;
        return record.value;
      },
    });
  const wrapped = new Proxy(eventLog, {
    get(target, name) {
      if (name === 'subscribe') {
        return (options: Parameters<EventLog['subscribe']>[0]) =>
          target.subscribe({ ...options, eachBatch: (batch) => options.eachBatch({ ...batch, records: batch.records.map(counted) }) });
      }
      const value = Reflect.get(target, name) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { eventLog: wrapped, reads: () => reads };
}

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

describe('label join on a backlog', () => {
  it("joins every label into its merchant's fraud rate, none late, decoding each record about once", async () => {
    const eventLog = new MemoryEventLog();
    const store = new MemoryOnlineStore();
    const registry = createRegistry({ defaultMetrics: false });
    const logger = createLogger('test', 'silent');
    // 45 minutes of transactions: the log serves up to 500 records of a partition at a time, over half an hour of them.
    const backlog = labelBacklog(2_700, 1);
    await publishBacklog(eventLog, topics, backlog);
    const seenByJoin = countingValueReads(eventLog);
    const join = await startLabelJoin({
      eventLog: seenByJoin.eventLog,
      store,
      topics,
      groupId: 'join',
      windowMs: 8 * 86_400_000,
      maxAheadMs: allowedLatenessMs / 2,
      registry,
      logger,
    });
    stops.push(() => join.stop());
    const example = fraud.fraudExample(topics);
    const pipeline = await startFeaturePipeline({
      eventLog,
      store,
      sources: example.sources.filter((s) => s.topic === topics.labelledTransactions),
      groups: example.groups.filter((g) => g.definition.name === 'merchant_labels'),
      deadLetterTopic: 'dead-letter',
      allowedLatenessMs,
      groupId: 'features',
      registry,
      logger,
    });
    stops.push(() => pipeline.stop());
    const handled = async () =>
      ((await registry.getSingleMetric('tributary_pipeline_events_total')?.get())?.values ?? []).reduce((sum, v) => sum + v.value, 0);
    await waitFor(async () => (await handled()) === backlog.labels.length, {
      timeoutMs: 20_000,
      what: 'every labelled transaction handled',
    });
    await pipeline.flush();
    const late = eventLog
      .records('dead-letter')
      .map((r) => JSON.parse(r.value!.toString()) as DeadLetter)
      .filter((letter) => letter.reason === 'late');
    expect(late.length).toBe(0);
    expect(eventLog.records(topics.labelledTransactions)).toHaveLength(backlog.labels.length);
    expect(await wrongFraudRates(store, backlog)).toEqual([]);
    // Held back, a partition is fetched again every 100 ms while the others catch up: only its first record is
    // looked at each time, not the whole batch (which decoded the backlog's records many times over).
    const records = backlog.transactions.length + backlog.labels.length;
    console.log(`label join: ${seenByJoin.reads()} decodings of ${records} records`);
    expect(seenByJoin.reads()).toBeLessThan(1.5 * records);
  });
});
