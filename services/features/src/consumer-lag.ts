/**
 * The lag of the feature service's consumer groups (the pipeline's, one per source, and the label
 * join's), `tributary_pipeline_consumer_lag{consumer,topic,partition}` behind the ConsumerLagHigh
 * alert, and when each member last handled a batch of each partition,
 * `tributary_pipeline_consumed_timestamp_seconds`, behind ConsumerPartitionsStuck (shared's
 * trackConsumerLag, as the monitor reports its own: refreshed between batches from the event
 * log's end offsets and the group's committed offsets until `stop`).
 */
import { Gauge, metric, trackConsumerLag, type ConsumerLag, type ConsumerLagOptions, type Registry } from '@tributary/shared';

export function consumerLag(
  registry: Registry,
  /** The consumer group (the `consumer` label). */
  consumer: string,
  refresh: Pick<ConsumerLagOptions, 'eventLog' | 'logger' | 'refreshMs'>,
): ConsumerLag {
  const lag = metric(
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
  const consumedAt = metric(
    registry,
    'tributary_pipeline_consumed_timestamp_seconds',
    () =>
      new Gauge({
        name: 'tributary_pipeline_consumed_timestamp_seconds',
        help: 'When this member of the consumer group last handled a batch of the partition it holds, or began to hold it, in Unix seconds',
        labelNames: ['consumer', 'topic', 'partition'],
        registers: [registry],
      }),
  );
  return trackConsumerLag({ lag, consumedAt }, { ...refresh, groupId: consumer, labels: { consumer } });
}
