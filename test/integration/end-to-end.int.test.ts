/**
 * One prediction flowing end to end on the real broker and Redis: events pushed over HTTP
 * go through Kafka into the feature pipeline, land in Redis, change the served features
 * and the prediction, and the prediction is logged on Kafka; a malformed record on the
 * source topic is dead-lettered with its reason; a pipeline that restarts and replays the
 * topic from the beginning leaves the features unchanged.
 */
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFeaturePipeline, type FeaturePipeline } from '@tributary/features';
import { createInferenceApp } from '@tributary/inference';
import { monitorSettings, startMonitor, type Monitor } from '@tributary/monitor';
import {
  createLogger,
  createRegistry,
  fraud,
  KafkaEventLog,
  loadConfig,
  RedisOnlineStore,
  type Config,
  type DeadLetter,
  type LogRecord,
} from '@tributary/shared';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);

describe.skipIf(!ready)(
  `end to end on Kafka and Redis${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('e2e');
    let config: Config;
    let eventLog: KafkaEventLog;
    let store: RedisOnlineStore;
    let app: Awaited<ReturnType<typeof createInferenceApp>>;
    let pipeline: FeaturePipeline | null = null;
    let monitor: Monitor;
    const registry = createRegistry({ defaultMetrics: false });
    /** Valid events published to the source topic so far: a full replay must reach all. */
    let validEvents = 0;
    const logger = createLogger('e2e', 'silent');

    const startPipeline = (groupId: string) =>
      startFeaturePipeline({
        eventLog,
        store,
        sources: fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS })
          .sources,
        groups: fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS })
          .groups,
        deadLetterTopic: config.TOPIC_DEAD_LETTER,
        allowedLatenessMs: config.ALLOWED_LATENESS,
        groupId,
        registry,
        logger,
      });

    beforeAll(async () => {
      config = loadConfig({
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${run}:`,
        TOPIC_TRANSACTIONS: `${run}-transactions`,
        TOPIC_LABELS: `${run}-labels`,
        TOPIC_PREDICTIONS: `${run}-predictions`,
        TOPIC_DEAD_LETTER: `${run}-dead-letter`,
        TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
        LOG_LEVEL: 'silent',
        // The service, the pipeline and the monitor share this process's event loop, whose delay a
        // loaded machine can push past the shedding bound: shedding has tests of its own.
        SHED_EVENT_LOOP_DELAY_MS: '0',
      });
      eventLog = new KafkaEventLog({ brokers: config.KAFKA_BROKERS!, clientId: run, sessionTimeout: 6_000 });
      store = new RedisOnlineStore({ url: config.REDIS_URL!, keyPrefix: config.REDIS_KEY_PREFIX });
      await eventLog.ensureTopics(
        [config.TOPIC_TRANSACTIONS, config.TOPIC_LABELS, config.TOPIC_PREDICTIONS, config.TOPIC_DEAD_LETTER].map((name) => ({
          name,
          partitions: 4,
        })),
      );
      app = await createInferenceApp(config, { eventLog, store, registry, logger });
      pipeline = await startPipeline(`${run}-features`);
      monitor = await startMonitor({
        eventLog,
        topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
        groupId: `${run}-monitor`,
        registry,
        logger,
        ...monitorSettings(config),
      });
    });

    afterAll(async () => {
      await pipeline?.stop();
      await monitor?.stop();
      await app?.close();
      await eventLog?.close();
      const keys = await store.client.keys(`${run}:*`);
      if (keys.length > 0) await store.client.del(...keys);
      await store?.close();
    });

    const userFeatures = async (id: string) => {
      const response = await app.inject({ method: 'GET', url: `/v1/features/user_id/${id}` });
      expect(response.statusCode, response.body).toBe(200);
      return response.json().groups[0] as { values: Record<string, number | string | null>; freshness_ms: number | null };
    };

    const readTopic = async (topic: string, count: number): Promise<LogRecord[]> => {
      const received: LogRecord[] = [];
      const subscription = await eventLog.subscribe({
        groupId: uniqueName('reader'),
        topics: [topic],
        fromBeginning: true,
        eachBatch: async (batch) => {
          received.push(...batch.records);
        },
      });
      try {
        await waitFor(() => received.length >= count, { timeoutMs: 30_000, what: `${count} records on ${topic}` });
      } finally {
        await subscription.stop();
      }
      return received;
    };

    it('pushed events change the served features and the prediction, which is logged on Kafka', async () => {
      const user = uniqueName('u').replaceAll('-', '_');
      const request = {
        request_id: `${run}-r1`,
        entities: { user_id: user, merchant_id: 'm_e2e' },
        features: { amount: 900, country: 'US', channel: 'web' },
      };
      const before = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: request });
      expect(before.statusCode, before.body).toBe(200);
      expect(before.json().defaulted).toContain('user_transactions:count_10m');

      const now = Date.now();
      const events = Array.from({ length: 5 }, (_, i) => ({
        event_id: `${run}-e${i}`,
        user_id: user,
        merchant_id: 'm_e2e',
        amount: 100 * (i + 1),
        currency: 'USD',
        country: 'GB',
        channel: 'web',
        ts: now - (5 - i) * 1000,
      }));
      const push = await app.inject({ method: 'POST', url: '/v1/events/transactions', payload: events });
      expect(push.statusCode, push.body).toBe(202);
      validEvents += events.length;

      const features = await waitFor(
        async () => {
          const f = await userFeatures(user);
          return f.values.count_10m === 5 ? f : null;
        },
        { timeoutMs: 30_000, what: 'the pipeline to apply the pushed events' },
      );
      expect(features.values).toMatchObject({
        count_1h: 5,
        amount_sum_1h: 1500,
        amount_max_24h: 500,
        amount_mean_24h: 300,
        country_last_24h: 'GB',
      });
      expect(features.freshness_ms).toBeGreaterThanOrEqual(0);

      const after = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: { ...request, request_id: `${run}-r2` } });
      const explanation = after.json().explanation as { name: string; value: number; source: string }[];
      expect(explanation.find((e) => e.name === 'user_transactions:count_10m')).toMatchObject({ value: 5, source: 'store' });
      expect(explanation.find((e) => e.name === 'on_demand:country_changed')).toMatchObject({ value: 1 });
      expect(after.json().score).not.toBe(before.json().score);

      const logged = await readTopic(config.TOPIC_PREDICTIONS, 2);
      const ids = logged.map((r) => JSON.parse(r.value!.toString()).request_id);
      expect(ids).toEqual(expect.arrayContaining([`${run}-r1`, `${run}-r2`]));
      const second = logged.map((r) => JSON.parse(r.value!.toString())).find((r) => r.request_id === `${run}-r2`);
      expect(second.features['user_transactions:count_10m']).toBe(5);
      expect(second.score).toBe(after.json().score);

      await waitFor(
        async () => /tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} [2-9]/.test(await registry.metrics()),
        {
          timeoutMs: 30_000,
          what: 'the monitor to count the predictions',
        },
      );
    });

    it('dead-letters a malformed record on the source topic and keeps processing', async () => {
      const user = uniqueName('u').replaceAll('-', '_');
      await eventLog.publish(config.TOPIC_TRANSACTIONS, [
        { key: user, value: '{"event_id": "broken", "amount": ' },
        {
          key: user,
          value: JSON.stringify({
            event_id: `${run}-ok`,
            user_id: user,
            merchant_id: 'm_e2e',
            amount: 1,
            currency: 'USD',
            country: 'US',
            channel: 'pos',
            ts: Date.now(),
          }),
        },
      ]);
      validEvents += 1;
      await waitFor(async () => (await userFeatures(user)).values.count_10m === 1, { timeoutMs: 30_000, what: 'the valid event' });
      const letters = (await readTopic(config.TOPIC_DEAD_LETTER, 1)).map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
      const letter = letters.find((l) => l.source.key === user);
      expect(letter).toMatchObject({
        reason: 'malformed',
        value: '{"event_id": "broken", "amount": ',
        source: { topic: config.TOPIC_TRANSACTIONS },
      });
      expect(letter!.detail).toMatch(/invalid JSON/);
    });

    it('a dead letter keeps the exact bytes of a key and of headers that are not UTF-8 text, in base64', async () => {
      const key = Buffer.concat([Buffer.from(uniqueName('k')), Buffer.from([0xff, 0xfe, 0xc3, 0x28])]);
      // Sent by a plain kafkajs producer: the project's own producers send text keys.
      const producer = new kafkajs.Kafka({ brokers: services.kafkaBrokers!, clientId: `${run}-bytes` }).producer();
      await producer.connect();
      try {
        await producer.send({
          topic: config.TOPIC_TRANSACTIONS,
          messages: [{ key, value: '{"event_id": "broken", ', headers: { origin: Buffer.from([0xfe, 0x01]), traceparent: '00-ab-cd-01' } }],
        });
      } finally {
        await producer.disconnect();
      }
      let letter: DeadLetter | undefined;
      await waitFor(
        async () => {
          const letters = (await readTopic(config.TOPIC_DEAD_LETTER, 1)).map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
          letter = letters.find((l) => l.source.key === key.toString('base64'));
          return letter !== undefined;
        },
        { timeoutMs: 30_000, what: 'the dead letter of the record with a key of bytes' },
      );
      expect(letter).toMatchObject({
        reason: 'malformed',
        source: {
          topic: config.TOPIC_TRANSACTIONS,
          key_encoding: 'base64',
          header_encoding: 'base64',
          headers: { origin: [Buffer.from([0xfe, 0x01]).toString('base64')], traceparent: [Buffer.from('00-ab-cd-01').toString('base64')] },
        },
      });
    });

    it('a pipeline restarted from the beginning of the topic (a new group) leaves every feature unchanged', async () => {
      const user = uniqueName('u').replaceAll('-', '_');
      const now = Date.now();
      await eventLog.publish(
        config.TOPIC_TRANSACTIONS,
        Array.from({ length: 20 }, (_, i) => ({
          key: user,
          value: JSON.stringify({
            event_id: `${run}-x${i}`,
            user_id: user,
            merchant_id: 'm_e2e',
            amount: i,
            currency: 'USD',
            country: 'US',
            channel: 'app',
            ts: now - i * 100,
          }),
        })),
      );
      validEvents += 20;
      const settled = await waitFor(
        async () => {
          const f = await userFeatures(user);
          return f.values.count_10m === 20 ? f : null;
        },
        { timeoutMs: 30_000, what: '20 events applied' },
      );
      await pipeline!.stop();
      // Replaying the whole topic is what a crash before any commit looks like.
      pipeline = await startPipeline(`${run}-features-replay`);
      const after = await waitFor(
        async () => {
          const text = (await registry.getSingleMetricAsString('tributary_pipeline_events_total')) ?? '';
          const replayed = Number(/outcome="replayed"\} (\d+)/.exec(text)?.[1] ?? 0);
          return replayed >= validEvents ? userFeatures(user) : null;
        },
        { timeoutMs: 30_000, what: 'the replay to reach every event' },
      );
      expect(after.values).toEqual(settled.values);
      const text = (await registry.getSingleMetricAsString('tributary_pipeline_events_total')) ?? '';
      // Applied once in the first run; the replay applied nothing.
      expect(Number(/outcome="applied"\} (\d+)/.exec(text)?.[1])).toBe(validEvents);
    });
  },
);
