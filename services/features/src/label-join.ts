/**
 * The label join: labels name only the request they judge (`request_id`, the transaction's
 * `event_id`); features about a merchant's fraud rate need the merchant. This consumer of
 * the transactions and labels topics remembers each transaction's merchant for the join
 * window, and publishes every label it can join as a labelled transaction
 * `{event_id, merchant_id, label, ts}` (event time: the label's), whichever side arrives
 * first: a label ahead of its transaction waits in the store. Each side is remembered and the
 * other looked up in one atomic step of the store (`meet`), so a transaction and its label
 * handled at once by two processes still meet. Records this join cannot read are left to the
 * pipeline and the monitor, which dead-letter them; this join counts them
 * (`tributary_label_join_records_total{outcome="transaction_unreadable"|"label_unreadable"}`).
 * Its lag is the pipeline's metric, `tributary_pipeline_consumer_lag{consumer="<prefix>-label-join"}`.
 * A stop gives up the batch in flight (not committed, it is joined again by the next owner of
 * its partition) rather than wait for a store that is down.
 *
 * After a crash a batch may be joined twice; the labelled transaction then carries the same
 * event id, and the feature pipeline drops the duplicate.
 */
import {
  Counter,
  fraud,
  LabelSchema,
  metric,
  recordValidator,
  type EventLog,
  type Label,
  type Logger,
  type OnlineStore,
  type OutgoingRecord,
  type RecordBatch,
  type Registry,
  type Subscription,
} from '@tributary/shared';
import { consumerLag } from './consumer-lag.js';
import { Stopping, stopSignal } from './stopping.js';

export interface LabelJoinOptions {
  eventLog: EventLog;
  store: OnlineStore;
  topics: { transactions: string; labels: string; labelledTransactions: string };
  groupId: string;
  /** How long a transaction waits for its label (and a label for its transaction). */
  windowMs: number;
  registry: Registry;
  logger: Logger;
}

const transactions = recordValidator<fraud.Transaction>(fraud.TransactionSchema);
const labels = recordValidator<Label>(LabelSchema);

export async function startLabelJoin(options: LabelJoinOptions): Promise<{ stop(): Promise<void> }> {
  const joined = metric(
    options.registry,
    'tributary_label_join_records_total',
    () =>
      new Counter({
        name: 'tributary_label_join_records_total',
        help: 'Records seen by the label join, by outcome',
        labelNames: ['outcome'],
        registers: [options.registry],
      }),
  );
  const joinedRecord = (requestId: string, merchantId: string, label: Label): OutgoingRecord => ({
    key: merchantId,
    value: JSON.stringify({ event_id: requestId, merchant_id: merchantId, label: label.label, ts: label.ts }),
  });

  // Sides remembered by a version before 2026-12-01 (`txn:<id>`, `lbl:<id>`, not met atomically) are
  // looked up too while they can still be there: for one join window after the start.
  const legacyUntil = Date.now() + options.windowMs;
  const legacy = async (ids: string[], side: 'txn' | 'lbl'): Promise<(string | null)[]> =>
    ids.length === 0 || Date.now() >= legacyUntil ? ids.map(() => null) : options.store.recall(ids.map((id) => `${side}:${id}`));

  const lag = consumerLag(options.registry, options.groupId, { eventLog: options.eventLog, logger: options.logger });
  let rebalances = 0;
  const handle = async (batch: RecordBatch): Promise<void> => {
    const assignment = rebalances;
    lag.arrived(batch);
    await join(batch);
    // Unless a rebalance may have given the partition to another member meanwhile (that one reports it).
    if (assignment === rebalances) lag.handled(batch);
  };
  /** The records of a batch the join can read (those it cannot are counted once the batch is joined). */
  const readable = <T>(batch: RecordBatch, validator: typeof transactions | typeof labels): T[] =>
    batch.records.flatMap((r) => {
      const decoded = validator.decode(r.value);
      return decoded.ok ? [decoded.value as T] : [];
    });
  const join = async (batch: RecordBatch): Promise<void> => {
    const out: OutgoingRecord[] = [];
    if (batch.topic === options.topics.transactions) {
      const seen = readable<fraud.Transaction>(batch, transactions);
      // Remembered, and its label (when it came first) taken, in one step: a label handled meanwhile finds it.
      const waiting = await options.store.meet(
        seen.map((t) => ({ pair: t.event_id, side: 'txn', other: 'lbl', value: t.merchant_id, ttlMs: options.windowMs, keep: true })),
      );
      const unmatched = seen.filter((_, i) => waiting[i] === null);
      const waitingBefore = await legacy(
        unmatched.map((t) => t.event_id),
        'lbl',
      );
      const done: { pair: string; side: string }[] = [];
      const legacyDone: string[] = [];
      const join = (t: fraud.Transaction, text: string | null | undefined) => {
        if (text === null || text === undefined) return false;
        out.push(joinedRecord(t.event_id, t.merchant_id, JSON.parse(text) as Label));
        return true;
      };
      seen.forEach((t, i) => join(t, waiting[i]) && done.push({ pair: t.event_id, side: 'lbl' }));
      unmatched.forEach((t, i) => join(t, waitingBefore[i]) && legacyDone.push(`lbl:${t.event_id}`));
      if (out.length > 0) await options.eventLog.publish(options.topics.labelledTransactions, out);
      await options.store.forgetSides(done);
      await options.store.forget(legacyDone);
      joined.inc({ outcome: 'joined' }, out.length);
      joined.inc({ outcome: 'transaction_remembered' }, seen.length);
      joined.inc({ outcome: 'transaction_unreadable' }, batch.records.length - seen.length);
      return;
    }
    const seen = readable<Label>(batch, labels);
    // Its transaction's merchant read, or the label remembered, in one step: a transaction handled meanwhile finds it.
    const merchants = await options.store.meet(
      seen.map((l) => ({ pair: l.request_id, side: 'lbl', other: 'txn', value: JSON.stringify(l), ttlMs: options.windowMs })),
    );
    const unmatched = seen.filter((_, i) => merchants[i] === null);
    const merchantsBefore = await legacy(
      unmatched.map((l) => l.request_id),
      'txn',
    );
    const joinedBefore: { pair: string; side: string }[] = [];
    seen.forEach((label, i) => {
      const merchant = merchants[i];
      if (merchant !== null && merchant !== undefined) out.push(joinedRecord(label.request_id, merchant, label));
    });
    unmatched.forEach((label, i) => {
      const merchant = merchantsBefore[i];
      if (merchant === null || merchant === undefined) return;
      out.push(joinedRecord(label.request_id, merchant, label));
      joinedBefore.push({ pair: label.request_id, side: 'lbl' });
    });
    if (out.length > 0) await options.eventLog.publish(options.topics.labelledTransactions, out);
    // Joined to a transaction remembered by the version before: not waiting after all.
    await options.store.forgetSides(joinedBefore);
    joined.inc({ outcome: 'joined' }, out.length);
    joined.inc({ outcome: 'label_waiting' }, seen.length - out.length);
    joined.inc({ outcome: 'label_unreadable' }, batch.records.length - seen.length);
  };
  const signal = stopSignal();
  const subscription: Subscription = await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [options.topics.transactions, options.topics.labels],
    fromBeginning: true,
    onRebalance: () => {
      rebalances++;
      lag.forget();
    },
    onError: (error) => {
      if (!(error instanceof Stopping)) options.logger.warn({ err: error }, 'label join batch failed; it will be retried');
    },
    eachBatch: (batch) => (signal.stopped ? Promise.reject(new Stopping()) : signal.until(handle(batch))),
  });
  return {
    stop: () => {
      signal.stop();
      lag.stop();
      return subscription.stop();
    },
  };
}
