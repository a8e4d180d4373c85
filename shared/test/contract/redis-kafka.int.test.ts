import { describe } from 'vitest';
import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { realServices } from '../../../test/integration/services.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import { RedisOnlineStore } from '../../src/online-store/redis.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
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

describe.skipIf(!services.kafkaBrokers)(`Kafka${services.kafkaBrokers ? '' : ` (skipped: ${services.missing('kafka')})`}`, () => {
  eventLogContract(
    'Kafka',
    async () => new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'contract-test', sessionTimeout: 6_000 }),
    {
      timeoutMs: 30_000,
    },
  );
});
