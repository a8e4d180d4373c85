/**
 * The lag of the feature service's consumer groups (the pipeline's, one per source, and the label
 * join's), `tributary_pipeline_consumer_lag{consumer,topic,partition}` behind the ConsumerLagHigh
 * alert: the records of a partition after the next one its group consumes, from each batch's high
 * watermark. A member reports a batch as it arrives (its records included, so that the lag grows
 * while batches fail and are delivered again) and once it is handled (what is left after it), and
 * forgets its partitions when a rebalance may have given them to another member (that one's would
 * stay frozen in the sum).
 */
import { Gauge, metric, type RecordBatch, type Registry } from '@tributary/shared';

export interface ConsumerLag {
  /** The batch's partition's lag from its first record, when the batch says where its partition ends. */
  arrived(batch: RecordBatch): number | undefined;
  /** The lag after the batch. */
  handled(batch: RecordBatch): number | undefined;
  /** Stops reporting the partitions reported so far. */
  forget(): void;
}

export function consumerLag(registry: Registry, consumer: string): ConsumerLag {
  const gauge = metric(
    registry,
    'tributary_pipeline_consumer_lag',
    () =>
      new Gauge({
        name: 'tributary_pipeline_consumer_lag',
        help: 'Records in the partition not yet consumed by the consumer group',
        labelNames: ['consumer', 'topic', 'partition'],
        registers: [registry],
      }),
  );
  const reported = new Map<string, { consumer: string; topic: string; partition: string }>();
  const report = (batch: RecordBatch, next: bigint) => {
    if (batch.highWatermark === undefined) return undefined;
    const lag = Number(BigInt(batch.highWatermark) - next);
    const labels = { consumer, topic: batch.topic, partition: String(batch.partition) };
    reported.set(`${batch.topic}:${batch.partition}`, labels);
    gauge.set(labels, lag);
    return lag;
  };
  return {
    arrived: (batch) => report(batch, BigInt(batch.records[0]!.offset)),
    handled: (batch) => report(batch, BigInt(batch.records.at(-1)!.offset) + 1n),
    forget: () => {
      for (const labels of reported.values()) gauge.remove(labels);
      reported.clear();
    },
  };
}
