import { describe } from 'vitest';
import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { realServices } from '../../../test/integration/services.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import type { TopicSpec } from '../../src/event-log/types.js';
import { RedisOnlineStore } from '../../src/online-store/redis.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { createTopic } from '../../../test/support/topics.js';
import { uniqueName } from '../../../test/support/wait-for.js';

const services = realServices();

// Without the real services these suites are reported skipped, with the reason; CI
// (TRIBUTARY_REQUIRE_INTEGRATION=1) fails instead, and .ci/run fails on any skipped integration test.
describe.skipIf(!services.redisUrl)(`Redis${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  onlineStoreContract('Redis', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    return deletingKeysOnClose(new RedisOnlineStore({ url: services.redisUrl!, keyPrefix }), services.redisUrl!, keyPrefix);
  });
});

/**
 * The Kafka event log, its topics created as the integration tests create theirs (createTopic: the
 * admin API, or the control channel of librdkafka's mock cluster, which the admin API cannot
 * create topics on), with the partitions asked.
 */
class ContractKafkaEventLog extends KafkaEventLog {
  override async ensureTopics(topics: TopicSpec[]): Promise<TopicSpec[]> {
    for (const { name, partitions } of topics) await createTopic(services.kafkaBrokers!, name, partitions);
    return [];
  }
}

describe.skipIf(!services.kafkaBrokers)(`Kafka${services.kafkaBrokers ? '' : ` (skipped: ${services.missing('kafka')})`}`, () => {
  eventLogContract(
    'Kafka',
    async () => new ContractKafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'contract-test', sessionTimeout: 6_000 }),
    {
      timeoutMs: 30_000,
    },
  );
});
