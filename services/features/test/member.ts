/** A feature pipeline member of group `features` on the example's transactions (the user group alone), for tests. */
import { createLogger, createRegistry, fraud, type MemoryEventLog, type MemoryOnlineStore } from '@tributary/shared';
import { startFeaturePipeline, type FeaturePipelineOptions } from '../src/pipeline.js';

const example = fraud.fraudExample();
export const source = example.sources.find((s) => s.topic === 'transactions')!;
export const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;

/**
 * Starts a member; its `stop` (which may be called again) goes to `stops`. Its metrics: events per outcome, entity
 * states written per outcome, and per partition the consumer lag and when a batch was last handled.
 */
export async function startMember(
  eventLog: MemoryEventLog,
  store: MemoryOnlineStore,
  stops: (() => Promise<void>)[],
  overrides: Partial<FeaturePipelineOptions> = {},
) {
  const registry = createRegistry({ defaultMetrics: false });
  const pipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: [source],
    groups: [user],
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry,
    logger: createLogger('test', 'warn', { write: () => {} }),
    flushIntervalMs: 5,
    ...overrides,
  });
  let stopped = false;
  const stop = async () => {
    if (!stopped) await pipeline.stop();
    stopped = true;
  };
  stops.push(stop);
  const events = async (outcome: string) =>
    ((await registry.getSingleMetric('tributary_pipeline_events_total')?.get())?.values ?? [])
      .filter((v) => v.labels.outcome === outcome)
      .reduce((sum, v) => sum + v.value, 0);
  const written = async (outcome: string) =>
    ((await registry.getSingleMetric('tributary_pipeline_entities_written_total')?.get())?.values ?? [])
      .filter((v) => v.labels.outcome === outcome)
      .reduce((sum, v) => sum + v.value, 0);
  const byPartition = async (name: string) =>
    Object.fromEntries(((await registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => [String(v.labels.partition), v.value]));
  const lag = () => byPartition('tributary_pipeline_consumer_lag');
  const consumedAt = () => byPartition('tributary_pipeline_consumed_timestamp_seconds');
  return { pipeline, stop, events, written, lag, consumedAt };
}
