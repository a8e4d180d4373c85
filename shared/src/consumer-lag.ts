/**
 * A consumer group's lag per partition on a gauge labelled `topic` and `partition` (beside any
 * fixed labels): the records of the partition after the next one the group consumes, from each
 * batch's high watermark. A member reports a batch as it arrives (its records included, so that
 * the lag grows while batches fail and are delivered again) and once it is handled (what is left
 * after it), and forgets its partitions when a rebalance may have given them to another member
 * (that one's would stay frozen in the sum).
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

export function trackConsumerLag(gauge: Gauge, fixed: Record<string, string> = {}): ConsumerLag {
  const reported = new Map<string, Record<string, string>>();
  const report = (batch: RecordBatch, next: bigint) => {
    if (batch.highWatermark === undefined) return undefined;
    const lag = Number(BigInt(batch.highWatermark) - next);
    const labels = { ...fixed, topic: batch.topic, partition: String(batch.partition) };
    reported.set(`${batch.topic}:${batch.partition}`, labels);
    gauge.set(labels, lag);
    return lag;
  };
  return {
    arrived: (batch) => report(batch, BigInt(batch.records[0]!.offset)),
    // Past the fetch's last offset: a transaction's marker after the last record is not waiting.
    handled: (batch) => report(batch, BigInt(batch.lastOffset ?? batch.records.at(-1)!.offset) + 1n),
    forget: () => {
      for (const labels of reported.values()) gauge.remove(labels);
      reported.clear();
    },
  };
}
