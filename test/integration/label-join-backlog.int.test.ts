/**
 * The feature service (pipeline and label join, as `services/features` starts them) started on Kafka and Redis
 * after a backlog of transactions and their labels was published: the merchants' fraud rates count every label,
 * none dead-lettered as late. The backlog goes in sends of 1,000 records, as the simulator's: librdkafka's mock
 * broker answers a fetch with one such send's records of a partition, which then span over 15 minutes of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFeatureService, type FeatureService } from '@tributary/features';
import { createLogger, createRegistry, KafkaEventLog, loadConfig, RedisOnlineStore, type Config, type DeadLetter } from '@tributary/shared';
import { labelBacklog, publishBacklog, wrongFraudRates } from '../support/label-backlog.js';
import { deletingKeysOnClose } from '../support/redis-cleanup.js';
import { createTopic } from '../support/topics.js';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);

describe.skipIf(!ready)(
  `label join on a backlog, on Kafka and Redis${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('label-backlog');
    const registry = createRegistry({ defaultMetrics: false });
    let config: Config;
    let eventLog: KafkaEventLog;
    let store: RedisOnlineStore;
    let service: FeatureService | null = null;

    beforeAll(async () => {
      config = loadConfig({
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${run}:`,
        CONSUMER_GROUP_PREFIX: run,
        TOPIC_TRANSACTIONS: `${run}-transactions`,
        TOPIC_LABELS: `${run}-labels`,
        TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
        TOPIC_DEAD_LETTER: `${run}-dead-letter`,
        LOG_LEVEL: 'silent',
      });
      for (const topic of [config.TOPIC_TRANSACTIONS, config.TOPIC_LABELS, config.TOPIC_LABELLED_TRANSACTIONS])
        await createTopic(services.kafkaBrokers!, topic, 4);
      await createTopic(services.kafkaBrokers!, config.TOPIC_DEAD_LETTER, 1);
      eventLog = new KafkaEventLog({ brokers: config.KAFKA_BROKERS!, clientId: run, sessionTimeout: 6_000 });
      store = deletingKeysOnClose(
        new RedisOnlineStore({ url: config.REDIS_URL!, keyPrefix: config.REDIS_KEY_PREFIX }),
        config.REDIS_URL!,
        config.REDIS_KEY_PREFIX,
      );
    });

    afterAll(async () => {
      await service?.stop();
      await eventLog?.close();
      await store?.close();
    });

    it("joins every label into its merchant's fraud rate, none late", async () => {
      // An hour of transactions.
      const backlog = labelBacklog(3_600, 1);
      await publishBacklog(eventLog, { transactions: config.TOPIC_TRANSACTIONS, labels: config.TOPIC_LABELS }, backlog);
      service = await startFeatureService(config, { eventLog, store, registry, logger: createLogger('test', 'silent') });
      const handled = async () =>
        ((await registry.getSingleMetric('tributary_pipeline_events_total')?.get())?.values ?? [])
          .filter((v) => v.labels.topic === config.TOPIC_LABELLED_TRANSACTIONS)
          .reduce((sum, v) => sum + v.value, 0);
      await waitFor(async () => (await handled()) === backlog.labels.length, {
        timeoutMs: 60_000,
        what: 'every labelled transaction handled by the pipeline',
      });
      // Stopped, the pipeline has written all it applied.
      await service.stop();
      service = null;
      const letters: DeadLetter[] = [];
      const reader = await eventLog.subscribe({
        groupId: `${run}-reader`,
        topics: [config.TOPIC_DEAD_LETTER],
        fromBeginning: true,
        eachBatch: async (batch) => {
          letters.push(...batch.records.map((r) => JSON.parse(r.value!.toString()) as DeadLetter));
        },
      });
      const ends = await eventLog.endOffsets(config.TOPIC_DEAD_LETTER);
      await waitFor(() => letters.length === Number(ends[0]!.end), { what: 'the dead letters' });
      await reader.stop();
      expect(letters.filter((letter) => letter.reason === 'late')).toHaveLength(0);
      expect(await wrongFraudRates(store, backlog)).toEqual([]);
    });
  },
);
