/**
 * The lag of the feature service's consumer groups (the pipeline's, one per source, and the label
 * join's), `tributary_pipeline_consumer_lag{consumer,topic,partition}` behind the ConsumerLagHigh
 * alert (shared's trackConsumerLag, as the monitor reports its own).
 */
import { Gauge, metric, trackConsumerLag, type ConsumerLag, type Registry } from '@tributary/shared';

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
  return trackConsumerLag(gauge, { consumer });
}
