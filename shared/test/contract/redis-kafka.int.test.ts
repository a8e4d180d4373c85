import { describe, it } from 'vitest';
import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { realServices } from '../../../test/integration/services.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import { RedisOnlineStore } from '../../src/online-store/redis.js';
import { uniqueName } from '../../../test/support/wait-for.js';

const services = realServices();

if (services.redisUrl) {
  const url = services.redisUrl;
  onlineStoreContract('Redis', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    const store = new RedisOnlineStore({ url, keyPrefix });
    const close = store.close.bind(store);
    // Leave nothing behind on the shared server.
    store.close = async () => {
      const keys = await store.client.keys(`${keyPrefix}*`);
      if (keys.length > 0) await store.client.del(...keys);
      await close();
    };
    return store;
  });
} else {
  describe.skip(`online store contract: Redis (${services.missing('redis')})`, () => it('needs Redis'));
}

if (services.kafkaBrokers) {
  const brokers = services.kafkaBrokers;
  eventLogContract('Kafka', async () => new KafkaEventLog({ brokers, clientId: 'contract-test', sessionTimeout: 6_000 }), {
    timeoutMs: 30_000,
  });
} else {
  describe.skip(`event log contract: Kafka (${services.missing('kafka')})`, () => it('needs Kafka'));
}
