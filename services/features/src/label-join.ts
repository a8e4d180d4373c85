/**
 * The label join: labels name only the request they judge (`request_id`, the transaction's
 * `event_id`); features about a merchant's fraud rate need the merchant. This consumer of
 * the transactions and labels topics remembers each transaction's merchant for the join
 * window, and publishes the label it joins of each transaction as a labelled transaction
 * `{event_id, merchant_id, label, ts}` (event time: the label's), whichever side arrives
 * first: a label ahead of its transaction waits in the store (a later one replaces it), and a
 * label after the one joined is not published (`publishFirst`). Each side is remembered and the
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
 *
 * Its partitions are taken in step in event time (event-time-alignment.ts): while it catches up on a
 * backlog, none is taken further than `maxAheadMs` past the slowest of the others, so that the labelled
 * transactions come out in about the order of their times, as when it keeps up. The records of a batch
 * beyond that are left for later: its partition is fetched again from the first of them.
 */
import {
  Counter,
  fraud,
  LabelSchema,
  metric,
  parseEventTime,
  recordValidator,
  type EventLog,
  type Label,
  type Logger,
  type OnlineStore,
  type OutgoingRecord,
  type PartlyHandled,
  type RecordBatch,
  type RecordValidator,
  type Registry,
  type Subscription,
} from '@tributary/shared';
import { consumerLag } from './consumer-lag.js';
import { EventTimeAlignment } from './event-time-alignment.js';
import { Stopping, stopSignal } from './stopping.js';

export interface LabelJoinOptions {
  eventLog: EventLog;
  store: OnlineStore;
  topics: { transactions: string; labels: string; labelledTransactions: string };
  groupId: string;
  /** How long a transaction waits for its label (and a label for its transaction). */
  windowMs: number;
  /**
   * How far ahead in event time a partition is taken of the slowest of the others with records waiting: half the
   * feature pipeline's allowed lateness, which leaves the other half to the disorder within a partition.
   */
  maxAheadMs: number;
  registry: Registry;
  logger: Logger;
}

const transactions = recordValidator<fraud.Transaction>(fraud.TransactionSchema);
/** A labelled transaction to publish, and the request it is the label of. */
interface Joined {
  requestId: string;
  record: OutgoingRecord;
}
/** Where the store remembers that a request's label was joined (its first; see `publishFirst`). */
const joinedKey = (requestId: string) => `lbl-joined:{${requestId}}`;
const labels = recordValidator<Label>(LabelSchema);

/**
 * A batch's records as the join reads them (null for one it cannot read), and their event times (-Infinity for
 * one it cannot read), each no later than its record was logged, as in the pipeline's watermark. A record is
 * decoded when it is first asked for: a partition held back (event-time-alignment.ts) is fetched again every
 * 100 ms, and only its first records are looked at until it is taken.
 */
function read<T extends { ts: number | string }>(batch: RecordBatch, validator: RecordValidator<T>) {
  const values: (T | null | undefined)[] = new Array(batch.records.length);
  const times: number[] = new Array(batch.records.length);
  const decode = (i: number) => {
    const decoded = validator.decode(batch.records[i]!.value);
    const value = decoded.ok ? decoded.value : null;
    const time = value === null ? null : parseEventTime(value.ts);
    const logged = batch.records[i]!.timestamp;
    values[i] = value;
    times[i] = time === null ? -Infinity : logged > 0 ? Math.min(time, logged) : time;
  };
  return {
    times: {
      length: batch.records.length,
      at(i: number): number | undefined {
        if (i < 0 || i >= batch.records.length) return undefined;
        if (values[i] === undefined) decode(i);
        return times[i];
      },
    },
    /** The first `count` records. */
    first(count: number): (T | null)[] {
      for (let i = 0; i < count; i++) if (values[i] === undefined) decode(i);
      return values.slice(0, count) as (T | null)[];
    },
  };
}

/** A label as the join keeps it while it waits (the label record); null for what it cannot read. */
function storedLabel(text: string): Label | null {
  try {
    const label = JSON.parse(text) as Partial<Label> | null;
    const ts = label?.ts;
    return (label?.label === 0 || label?.label === 1) && (typeof ts === 'string' || Number.isFinite(ts)) ? (label as Label) : null;
  } catch {
    return null;
  }
}

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
  const joinedRecord = (requestId: string, merchantId: string, label: Label): Joined => ({
    requestId,
    record: { key: merchantId, value: JSON.stringify({ event_id: requestId, merchant_id: merchantId, label: label.label, ts: label.ts }) },
  });
  /**
   * Publishes the first label joined of each request; a later one (a correction, or the same label delivered again)
   * is not: its fraud rate would count the transaction twice (the pipeline drops a copy of an event id only within the
   * allowed lateness). The requests joined are remembered for the join window once their labels are out, so a batch
   * that fails before publishing them publishes them when it comes again. Returns how many were published.
   */
  const publishFirst = async (out: Joined[]): Promise<number> => {
    if (out.length === 0) return 0;
    const ids = new Set<string>();
    const unique = out.filter((item) => !ids.has(item.requestId) && ids.add(item.requestId));
    const marks = await options.store.recall(unique.map((item) => joinedKey(item.requestId)));
    const first = unique.filter((_, i) => marks[i] === null);
    if (first.length > 0)
      await options.eventLog.publish(
        options.topics.labelledTransactions,
        first.map((item) => item.record),
      );
    await options.store.remember(first.map((item) => ({ key: joinedKey(item.requestId), value: '1', ttlMs: options.windowMs })));
    joined.inc({ outcome: 'label_repeated' }, out.length - first.length);
    return first.length;
  };

  // Sides remembered by a version before 2026-12-01 (`txn:<id>`, `lbl:<id>`, not met atomically) are
  // looked up too while they can still be there: for one join window after the start.
  const legacyUntil = Date.now() + options.windowMs;
  const legacy = async (ids: string[], side: 'txn' | 'lbl'): Promise<(string | null)[]> =>
    ids.length === 0 || Date.now() >= legacyUntil ? ids.map(() => null) : options.store.recall(ids.map((id) => `${side}:${id}`));

  const lag = consumerLag(options.registry, options.groupId, { eventLog: options.eventLog, logger: options.logger });
  const alignment = new EventTimeAlignment(options.maxAheadMs);
  let rebalances = 0;
  const handle = async (batch: RecordBatch): Promise<PartlyHandled | undefined> => {
    const assignment = rebalances;
    lag.arrived(batch);
    // A fetch of transaction markers or aborted records only: nothing to join (arrived, it is handled).
    if (batch.records.length === 0) return;
    const { first, times } = batch.topic === options.topics.transactions ? read(batch, transactions) : read(batch, labels);
    const taken = alignment.take(batch, times);
    // Nothing taken (a first look at the partition, or it is ahead): the store is not asked.
    if (taken > 0) await join(batch, first(taken));
    // Unless a rebalance may have given the partition to another member meanwhile (that one reports it).
    if (assignment === rebalances) {
      alignment.taken(batch, times, taken);
      // Consumed up to the records left for later: they wait, as those not fetched yet.
      lag.handled(taken === batch.records.length ? batch : { ...batch, lastOffset: String(BigInt(batch.records[taken]!.offset) - 1n) });
    }
    return taken < batch.records.length ? { handled: taken } : undefined;
  };
  /** Joins the records taken of a batch, as the join reads them (null: one it cannot read, only counted). */
  const join = async (batch: RecordBatch, taken: (fraud.Transaction | Label | null)[]): Promise<void> => {
    const out: Joined[] = [];
    if (batch.topic === options.topics.transactions) {
      const seen = taken.filter((t) => t !== null) as fraud.Transaction[];
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
      let unreadable = 0;
      const join = (t: fraud.Transaction, text: string | null | undefined) => {
        if (text === null || text === undefined) return false;
        const label = storedLabel(text);
        // A value something else wrote where a waiting label is kept: no label to join (counted; it expires).
        if (label === null) {
          unreadable++;
          return false;
        }
        out.push(joinedRecord(t.event_id, t.merchant_id, label));
        return true;
      };
      seen.forEach((t, i) => join(t, waiting[i]) && done.push({ pair: t.event_id, side: 'lbl' }));
      unmatched.forEach((t, i) => join(t, waitingBefore[i]) && legacyDone.push(`lbl:${t.event_id}`));
      const published = await publishFirst(out);
      await options.store.forgetSides(done);
      await options.store.forget(legacyDone);
      joined.inc({ outcome: 'joined' }, published);
      joined.inc({ outcome: 'transaction_remembered' }, seen.length);
      joined.inc({ outcome: 'transaction_unreadable' }, taken.length - seen.length);
      if (unreadable > 0) {
        joined.inc({ outcome: 'stored_label_unreadable' }, unreadable);
        options.logger.warn({ unreadable }, 'label join: waiting labels that cannot be read (written by something else); not joined');
      }
      return;
    }
    const seen = taken.filter((l) => l !== null) as Label[];
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
    const published = await publishFirst(out);
    // Joined to a transaction remembered by the version before: not waiting after all.
    await options.store.forgetSides(joinedBefore);
    joined.inc({ outcome: 'joined' }, published);
    joined.inc({ outcome: 'label_waiting' }, seen.length - out.length);
    joined.inc({ outcome: 'label_unreadable' }, taken.length - seen.length);
  };
  const signal = stopSignal();
  const subscription: Subscription = await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [options.topics.transactions, options.topics.labels],
    fromBeginning: true,
    // Fetches of transaction markers only move the lag (a partition that ends with one would stay at 1).
    emptyBatches: true,
    onRebalance: () => {
      rebalances++;
      lag.forget();
      alignment.forget();
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
