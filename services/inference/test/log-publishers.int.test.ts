/** Both prediction-log producers deliver the encoded records to a real broker, byte for byte. */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, KafkaEventLog, loadConfig, type LogRecord, type PredictionLogRecord, type Subscription } from '@tributary/shared';
import { predictionPublisher, type ClosablePublisher } from '../src/log-publisher.js';
import { encodePrediction } from '../src/prediction-log.js';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';

const services = realServices();
const missing = services.kafkaBrokers ? undefined : services.missing('kafka');

describe.skipIf(missing !== undefined)(`the prediction log's producers${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const closing: { close(): Promise<void> }[] = [];
  const subscriptions: Subscription[] = [];
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await Promise.all(closing.splice(0).map((c) => c.close()));
  });

  const record = (i: number): PredictionLogRecord => ({
    prediction_id: `p-${i}`,
    request_id: `r-${i}-é`,
    model: { name: 'fraud_detector', version: '1' },
    variant: 'champion',
    entities: { user_id: `u_${i}` },
    request: { amount: 10 + i, note: '𝄞'.repeat(i % 3) },
    features: { 'user_transactions:amount_mean_24h': Math.fround(41.37 + i), 'request:amount': 10 + i },
    defaulted: [],
    feature_age_ms: { user_transactions: 1000 },
    score: Math.fround(0.01 * i),
    degraded: false,
    requested_at: 1_800_000_000_000,
    predicted_at: 1_800_000_000_001,
    latency_ms: 1.5,
  });

  for (const producer of ['librdkafka', 'kafkajs'] as const) {
    it(`${producer}: every record arrives as encoded, keyed by its request id`, async () => {
      const config = loadConfig({ KAFKA_BROKERS: services.kafkaBrokers!.join(','), PREDICTION_LOG_PRODUCER: producer });
      const publisher: ClosablePublisher = predictionPublisher(config, createLogger('test', 'silent'));
      const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'log-publishers-test', sessionTimeout: 6_000 });
      closing.push(publisher, log);
      const topic = uniqueName(`predictions-${producer}`);
      const sent = Array.from({ length: 120 }, (_, i) => encodePrediction(record(i)));
      await publisher.publishPredictions(topic, sent.slice(0, 100));
      await publisher.publishPredictions(topic, sent.slice(100));
      const received: LogRecord[] = [];
      subscriptions.push(
        await log.subscribe({
          groupId: uniqueName('group'),
          topics: [topic],
          fromBeginning: true,
          eachBatch: async (batch) => void received.push(...batch.records),
        }),
      );
      await waitFor(() => received.length >= 120, { timeoutMs: 30_000, what: '120 records' });
      expect(received).toHaveLength(120);
      const byKey = new Map(received.map((r) => [r.key, r.value!.toString()]));
      for (const [i, { key, value }] of sent.entries()) {
        expect(byKey.get(key)).toBe(value.toString());
        const back = JSON.parse(byKey.get(key)!) as PredictionLogRecord;
        expect(back.request_id).toBe(record(i).request_id);
        expect(Math.fround(back.score)).toBe(record(i).score);
      }
    });
  }
});
