import { describe } from 'vitest';
import { Redis } from 'ioredis';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { RedisRoutingStore } from '../src/registry/routing.js';
import { routingStoreContract } from './routing.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis routing${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  routingStoreContract('Redis', async () => {
    const prefix = `${uniqueName('routing')}:`;
    const store = new RedisRoutingStore(services.redisUrl!, prefix);
    const close = store.close.bind(store);
    store.close = async () => {
      const client = new Redis(services.redisUrl!);
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
      await close();
    };
    return store;
  });
});
