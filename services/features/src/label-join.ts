/**
 * The label join: labels name only the request they judge (`request_id`, the transaction's
 * `event_id`); features about a merchant's fraud rate need the merchant. This consumer of
 * the transactions and labels topics remembers each transaction's merchant for the join
 * window, and publishes every label it can join as a labelled transaction
 * `{event_id, merchant_id, label, ts}` (event time: the label's), whichever side arrives
 * first: a label ahead of its transaction waits in the store. Records this join cannot read
 * are left to the pipeline and the monitor, which dead-letter them.
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
  type Registry,
  type Subscription,
} from '@tributary/shared';

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

  const subscription: Subscription = await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [options.topics.transactions, options.topics.labels],
    fromBeginning: true,
    onError: (error) => options.logger.warn({ err: error }, 'label join batch failed; it will be retried'),
    eachBatch: async (batch) => {
      const out: OutgoingRecord[] = [];
      if (batch.topic === options.topics.transactions) {
        const seen = batch.records.flatMap((r) => {
          const decoded = transactions.decode(r.value);
          return decoded.ok ? [decoded.value] : [];
        });
        await options.store.remember(seen.map((t) => ({ key: `txn:${t.event_id}`, value: t.merchant_id, ttlMs: options.windowMs })));
        const waiting = await options.store.recall(seen.map((t) => `lbl:${t.event_id}`));
        const done: string[] = [];
        waiting.forEach((text, i) => {
          if (text === null) return;
          out.push(joinedRecord(seen[i]!.event_id, seen[i]!.merchant_id, JSON.parse(text) as Label));
          done.push(`lbl:${seen[i]!.event_id}`);
        });
        if (out.length > 0) await options.eventLog.publish(options.topics.labelledTransactions, out);
        await options.store.forget(done);
        joined.inc({ outcome: 'joined' }, out.length);
        joined.inc({ outcome: 'transaction_remembered' }, seen.length);
        return;
      }
      const seen = batch.records.flatMap((r) => {
        const decoded = labels.decode(r.value);
        return decoded.ok ? [decoded.value] : [];
      });
      const merchants = await options.store.recall(seen.map((l) => `txn:${l.request_id}`));
      const pending = seen.filter((label, i) => {
        const merchant = merchants[i];
        if (merchant === null || merchant === undefined) return true;
        out.push(joinedRecord(label.request_id, merchant, label));
        return false;
      });
      if (out.length > 0) await options.eventLog.publish(options.topics.labelledTransactions, out);
      await options.store.remember(pending.map((l) => ({ key: `lbl:${l.request_id}`, value: JSON.stringify(l), ttlMs: options.windowMs })));
      joined.inc({ outcome: 'joined' }, out.length);
      joined.inc({ outcome: 'label_waiting' }, pending.length);
    },
  });
  return { stop: () => subscription.stop() };
}
