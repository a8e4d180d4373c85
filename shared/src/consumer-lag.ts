/**
 * A consumer group's lag per partition on a gauge labelled `topic` and `partition` (beside any
 * fixed labels): the records of the partition after the next one the group consumes, from each
 * batch's high watermark. A member reports a batch as it arrives (its records included, so that
 * the lag grows while batches fail and are delivered again) and once it is handled (what is left
 * after it), and forgets its partitions when a rebalance may have given them to another member
 * (that one's would stay frozen in the sum).
 *
 * Beside it, when the member last handled a batch of each partition it reports (for a partition
 * it has just been given, when its first batch arrived), in Unix seconds. A member stuck on a
 * partition (a batch that never ends, while the member still heartbeats and keeps its
 * partitions) leaves the lag frozen above 0 (the batch in flight counts), however many records
 * pile up behind it, and this time falling behind the clock.
 */
import type { Gauge } from 'prom-client';
import type { RecordBatch } from './event-log/types.js';

export interface ConsumerLag {
  /** The batch's partition's lag from its first record, when the batch says where its partition ends. */
  arrived(batch: RecordBatch): number | undefined;
  /** The lag after the batch. */
  handled(batch: RecordBatch): number | undefined;
  /** Stops reporting the partitions reported so far. */
  forget(): void;
}

export interface ConsumerLagGauges {
  lag: Gauge;
  /** When a batch of the partition was last handled (or its first arrived), Unix seconds. */
  consumedAt: Gauge;
}

export function trackConsumerLag(
  gauges: ConsumerLagGauges,
  fixed: Record<string, string> = {},
  clock: () => number = Date.now,
): ConsumerLag {
  const reported = new Map<string, Record<string, string>>();
  const report = (batch: RecordBatch, next: bigint, handled: boolean) => {
    if (batch.highWatermark === undefined) return undefined;
    const lag = Number(BigInt(batch.highWatermark) - next);
    const id = `${batch.topic}:${batch.partition}`;
    let labels = reported.get(id);
    const given = labels === undefined;
    if (!labels) {
      labels = { ...fixed, topic: batch.topic, partition: String(batch.partition) };
      reported.set(id, labels);
    }
    gauges.lag.set(labels, lag);
    // A partition just given is counted from its first batch.
    if (handled || given) gauges.consumedAt.set(labels, clock() / 1000);
    return lag;
  };
  return {
    arrived: (batch) => report(batch, BigInt(batch.records[0]!.offset), false),
    // Past the fetch's last offset: a transaction's marker after the last record is not waiting.
    handled: (batch) => report(batch, BigInt(batch.lastOffset ?? batch.records.at(-1)!.offset) + 1n, true),
    forget: () => {
      for (const labels of reported.values()) {
        gauges.lag.remove(labels);
        gauges.consumedAt.remove(labels);
      }
      reported.clear();
    },
  };
}
