/**
 * The monitor (first version): consumes the prediction log and the labels and turns them
 * into Prometheus metrics. Malformed records go to the dead-letter topic with the reason.
 */
import Type from 'typebox';
import {
  Counter,
  deadLetter,
  deadLetterCounter,
  Histogram,
  LabelSchema,
  metric,
  recordValidator,
  type EventLog,
  type Label,
  type Logger,
  type OutgoingRecord,
  type PredictionLogRecord,
  type Registry,
  type Subscription,
} from '@tributary/shared';

const PredictionRecordSchema = Type.Object({
  prediction_id: Type.String({ minLength: 1 }),
  request_id: Type.String({ minLength: 1 }),
  model: Type.Object({ name: Type.String({ minLength: 1 }), version: Type.String({ minLength: 1 }) }),
  variant: Type.String({ minLength: 1 }),
  score: Type.Number(),
  latency_ms: Type.Number({ minimum: 0 }),
});

export interface MonitorOptions {
  eventLog: EventLog;
  topics: { predictions: string; labels: string; deadLetter: string };
  groupId: string;
  registry: Registry;
  logger: Logger;
}

export interface Monitor {
  stop(): Promise<void>;
}

export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  const registers = [options.registry];
  const records = metric(
    options.registry,
    'tributary_monitor_records_total',
    () =>
      new Counter({
        name: 'tributary_monitor_records_total',
        help: 'Records consumed by the monitor',
        labelNames: ['stream', 'outcome'],
        registers,
      }),
  );
  const scores = metric(
    options.registry,
    'tributary_monitor_score',
    () =>
      new Histogram({
        name: 'tributary_monitor_score',
        help: 'Distribution of served scores, from the prediction log',
        labelNames: ['model', 'version', 'variant'],
        buckets: [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
        registers,
      }),
  );
  const labels = metric(
    options.registry,
    'tributary_monitor_labels_total',
    () => new Counter({ name: 'tributary_monitor_labels_total', help: 'Labels consumed, by value', labelNames: ['label'], registers }),
  );
  const deadLettered = deadLetterCounter(options.registry);
  const predictions = recordValidator<PredictionLogRecord>(PredictionRecordSchema);
  const labelRecords = recordValidator<Label>(LabelSchema);

  const subscription: Subscription = await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [options.topics.predictions, options.topics.labels],
    fromBeginning: true,
    onError: (error) => options.logger.warn({ err: error }, 'monitor batch failed; it will be retried'),
    eachBatch: async (batch) => {
      const stream = batch.topic === options.topics.predictions ? 'predictions' : 'labels';
      const rejected: OutgoingRecord[] = [];
      for (const record of batch.records) {
        if (stream === 'predictions') {
          const decoded = predictions.decode(record.value);
          if (!decoded.ok) {
            rejected.push(deadLetter(record, decoded.reason, decoded.detail, options.groupId));
            deadLettered.inc({ consumer: options.groupId, reason: decoded.reason });
            continue;
          }
          const p = decoded.value;
          scores.observe({ model: p.model.name, version: p.model.version, variant: p.variant }, p.score);
        } else {
          const decoded = labelRecords.decode(record.value);
          if (!decoded.ok) {
            rejected.push(deadLetter(record, decoded.reason, decoded.detail, options.groupId));
            deadLettered.inc({ consumer: options.groupId, reason: decoded.reason });
            continue;
          }
          labels.inc({ label: String(decoded.value.label) });
        }
      }
      if (rejected.length > 0) await options.eventLog.publish(options.topics.deadLetter, rejected);
      records.inc({ stream, outcome: 'accepted' }, batch.records.length - rejected.length);
      records.inc({ stream, outcome: 'dead_lettered' }, rejected.length);
    },
  });
  return { stop: () => subscription.stop() };
}
