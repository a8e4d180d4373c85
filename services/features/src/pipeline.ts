/**
 * The feature pipeline runner: consumes each source topic as a consumer group, applies
 * every batch to the online store through the batch processor, and sends records it
 * cannot apply to the dead-letter topic with the reason. Only this layer knows the event
 * log; only the store adapter knows Redis.
 */
import {
  Counter,
  deadLetter,
  Gauge,
  Histogram,
  metric,
  type CompiledFeatureGroup,
  type EventLog,
  type EventSource,
  type Logger,
  type OnlineStore,
  type Registry,
  type Subscription,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import { createBatchProcessor } from './batch-processor.js';
import { sourceDecoder } from './decode.js';

export interface FeaturePipelineOptions {
  eventLog: EventLog;
  store: OnlineStore;
  sources: (EventSource & { schema: TSchema })[];
  groups: CompiledFeatureGroup[];
  deadLetterTopic: string;
  allowedLatenessMs: number;
  groupId: string;
  registry: Registry;
  logger: Logger;
}

export interface FeaturePipeline {
  stop(): Promise<void>;
}

export async function startFeaturePipeline(options: FeaturePipelineOptions): Promise<FeaturePipeline> {
  const registers = [options.registry];
  const events = metric(
    options.registry,
    'tributary_pipeline_events_total',
    () =>
      new Counter({
        name: 'tributary_pipeline_events_total',
        help: 'Source events by outcome',
        labelNames: ['topic', 'outcome'],
        registers,
      }),
  );
  const deadLettered = metric(
    options.registry,
    'tributary_dead_letter_records_total',
    () =>
      new Counter({
        name: 'tributary_dead_letter_records_total',
        help: 'Records sent to the dead-letter topic',
        labelNames: ['consumer', 'reason'],
        registers,
      }),
  );
  const batchSeconds = metric(
    options.registry,
    'tributary_pipeline_batch_duration_seconds',
    () =>
      new Histogram({
        name: 'tributary_pipeline_batch_duration_seconds',
        help: 'Time to apply one batch',
        labelNames: ['topic'],
        registers,
      }),
  );
  const newestEvent = metric(
    options.registry,
    'tributary_pipeline_newest_event_timestamp_seconds',
    () =>
      new Gauge({
        name: 'tributary_pipeline_newest_event_timestamp_seconds',
        help: 'Event time of the newest applied event',
        labelNames: ['topic'],
        registers,
      }),
  );
  const subscriptions: Subscription[] = [];
  for (const source of options.sources) {
    const groups = options.groups.filter((g) => g.definition.source === source.name);
    if (groups.length === 0) continue;
    const process = createBatchProcessor({
      store: options.store,
      groups,
      decode: sourceDecoder(source),
      allowedLatenessMs: options.allowedLatenessMs,
    });
    const subscription = await options.eventLog.subscribe({
      groupId: options.groupId,
      topics: [source.topic],
      fromBeginning: true,
      onError: (error) => options.logger.warn({ err: error, topic: source.topic }, 'feature batch failed; it will be retried'),
      eachBatch: async (batch) => {
        const timer = batchSeconds.startTimer({ topic: batch.topic });
        const outcome = await process(batch);
        if (outcome.rejected.length > 0) {
          await options.eventLog.publish(
            options.deadLetterTopic,
            outcome.rejected.map((r) => deadLetter(r.record, r.reason, r.detail, options.groupId)),
          );
          for (const r of outcome.rejected) deadLettered.inc({ consumer: options.groupId, reason: r.reason });
          options.logger.debug({ topic: batch.topic, rejected: outcome.rejected.length }, 'records dead-lettered');
        }
        events.inc({ topic: batch.topic, outcome: 'applied' }, outcome.applied);
        events.inc({ topic: batch.topic, outcome: 'replayed' }, outcome.replayed);
        events.inc({ topic: batch.topic, outcome: 'dead_lettered' }, outcome.rejected.length);
        if (outcome.newestEventTime !== null) newestEvent.set({ topic: batch.topic }, outcome.newestEventTime / 1000);
        timer();
      },
    });
    subscriptions.push(subscription);
  }
  return {
    stop: async () => {
      await Promise.all(subscriptions.map((s) => s.stop()));
    },
  };
}
