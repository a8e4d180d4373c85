import { describe } from 'vitest';
import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { realServices } from '../../../test/integration/services.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import { RedisOnlineStore } from '../../src/online-store/redis.js';
import { uniqueName } from '../../../test/support/wait-for.js';

const services = realServices();

// Without the real services these suites are reported skipped, with the reason; CI
// (TRIBUTARY_REQUIRE_INTEGRATION=1) fails instead, and .ci/run fails on any skipped integration test.
describe.skipIf(!services.redisUrl)(`Redis${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  onlineStoreContract('Redis', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    const store = new RedisOnlineStore({ url: services.redisUrl!, keyPrefix });
    const close = store.close.bind(store);
    // Leave nothing behind on the shared server.
    store.close = async () => {
      const keys = await store.client.keys(`${keyPrefix}*`);
      if (keys.length > 0) await store.client.del(...keys);
      await close();
    };
    return store;
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
