/**
 * Tracing on the real broker and Redis: a pipeline batch consumed from Kafka is a
 * `feature_batch` span whose flush to Redis is its child, and a prediction that reads those
 * features from Redis is a server span with its four children, exported over OTLP/HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFeaturePipeline, type FeaturePipeline } from '@tributary/features';
import { createInferenceApp } from '@tributary/inference';
import {
  createLogger,
  createRegistry,
  fraud,
  KafkaEventLog,
  loadConfig,
  RedisOnlineStore,
  startTracing,
  type Config,
  type Tracing,
} from '@tributary/shared';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { deletingKeysOnClose } from '../support/redis-cleanup.js';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);

describe.skipIf(!ready)(
  `tracing on Kafka and Redis${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('tracing');
    let config: Config;
    let receiver: OtlpReceiver;
    let tracing: Tracing;
    let eventLog: KafkaEventLog;
    let store: RedisOnlineStore;
    let pipeline: FeaturePipeline | null = null;
    let app: Awaited<ReturnType<typeof createInferenceApp>> | null = null;

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      config = loadConfig({
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${run}:`,
        TOPIC_TRANSACTIONS: `${run}-transactions`,
        TOPIC_PREDICTIONS: `${run}-predictions`,
        TOPIC_DEAD_LETTER: `${run}-dead-letter`,
        TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: 'tributary-test',
        LOG_LEVEL: 'silent',
        SHED_EVENT_LOOP_DELAY_MS: '0',
      });
      tracing = await startTracing(config, { service: 'tributary' });
      eventLog = new KafkaEventLog({ brokers: config.KAFKA_BROKERS!, clientId: run, sessionTimeout: 6_000 });
      store = deletingKeysOnClose(
        new RedisOnlineStore({ url: config.REDIS_URL!, keyPrefix: config.REDIS_KEY_PREFIX }),
        config.REDIS_URL!,
        config.REDIS_KEY_PREFIX,
      );
      await eventLog.ensureTopics(
        [config.TOPIC_TRANSACTIONS, config.TOPIC_PREDICTIONS, config.TOPIC_DEAD_LETTER].map((name) => ({ name, partitions: 4 })),
      );
      const example = fraud.fraudExample({
        transactions: config.TOPIC_TRANSACTIONS,
        labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS,
      });
      const logger = createLogger('tracing', 'silent');
      const registry = createRegistry({ defaultMetrics: false });
      pipeline = await startFeaturePipeline({
        eventLog,
        store,
        sources: example.sources.filter((s) => s.topic === config.TOPIC_TRANSACTIONS),
        groups: example.groups,
        deadLetterTopic: config.TOPIC_DEAD_LETTER,
        allowedLatenessMs: config.ALLOWED_LATENESS,
        groupId: `${run}-features`,
        registry,
        logger,
        flushIntervalMs: 0,
      });
      app = await createInferenceApp(config, { eventLog, store, registry, logger });
    });

    afterAll(async () => {
      await pipeline?.stop();
      await app?.close();
      await tracing?.stop();
      await eventLog?.close();
      await store?.close();
      await receiver?.close();
    });

    it('traces a batch from Kafka with its flush to Redis, then a prediction that reads the features', async () => {
      const user = uniqueName('u').replaceAll('-', '_');
      const events = Array.from({ length: 3 }, (_, i) => ({
        key: user,
        value: JSON.stringify({
          event_id: `${run}-e${i}`,
          user_id: user,
          merchant_id: 'm_trace',
          amount: 20 + i,
          currency: 'USD',
          country: 'US',
          channel: 'web',
          ts: Date.now() - 1_000,
        }),
      }));
      await eventLog.publish(config.TOPIC_TRANSACTIONS, [...events, { key: user, value: '{"not": "a transaction"}' }]);

      const batches = await waitFor(
        async () => {
          await tracing.flush();
          const applied = receiver.spans.filter(
            (s) => s.name === 'feature_batch' && s.attributes['tributary.events.applied'] !== undefined,
          );
          const total = applied.reduce((sum, s) => sum + Number(s.attributes['messaging.batch.message_count']), 0);
          return total >= 4 ? applied : null;
        },
        { timeoutMs: 30_000, what: 'the batch spans of the four records' },
      );
      expect(new Set(batches.map((s) => s.attributes['messaging.destination.partition.id'])).size).toBe(1);
      expect(batches.reduce((sum, s) => sum + Number(s.attributes['tributary.events.applied']), 0)).toBe(3);
      expect(batches.reduce((sum, s) => sum + Number(s.attributes['tributary.events.dead_lettered']), 0)).toBe(1);
      for (const batch of batches) {
        expect(batch).toMatchObject({ service: 'tributary-test', parentSpanId: '' });
        expect(batch.attributes['messaging.destination.name']).toBe(config.TOPIC_TRANSACTIONS);
      }
      const flushes = await waitFor(
        async () => {
          await tracing.flush();
          const children = receiver.spans.filter((s) => s.name === 'feature_flush' && batches.some((b) => b.spanId === s.parentSpanId));
          return children.reduce((sum, s) => sum + Number(s.attributes['tributary.entities.written']), 0) > 0 ? children : null;
        },
        { timeoutMs: 30_000, what: 'a flush span under a batch' },
      );
      for (const flush of flushes) expect(flush.traceId).toBe(batches.find((b) => b.spanId === flush.parentSpanId)!.traceId);

      // The features are in Redis: the prediction reads them (not degraded, not defaulted).
      const response = await app!.inject({
        method: 'POST',
        url: '/v1/predict',
        payload: {
          request_id: `${run}-r1`,
          entities: { user_id: user, merchant_id: 'm_trace' },
          features: { amount: 50, country: 'US', channel: 'web' },
        },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json().defaulted).not.toContain('user_transactions:count_10m');
      const { server, children } = await waitFor(
        async () => {
          await tracing.flush();
          const found = receiver.spans.find((s) => s.name === 'POST /v1/predict');
          const below = found ? receiver.spans.filter((s) => s.parentSpanId === found.spanId) : [];
          return found && below.length >= 4 ? { server: found, children: below } : null;
        },
        { what: 'the prediction spans' },
      );
      expect(server.attributes).toMatchObject({ 'tributary.degraded': false, 'tributary.rows': 1, 'http.response.status_code': 200 });
      expect(children.map((s) => s.name).sort()).toEqual(['feature_fetch', 'log_publish', 'model_run', 'validation']);
      expect(children.every((s) => s.traceId === server.traceId)).toBe(true);
    });
  },
);
