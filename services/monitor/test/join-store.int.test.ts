import { describe } from 'vitest';
import { Redis } from 'ioredis';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { RedisJoinStore } from '../src/join-store.js';
import { joinStoreContract } from './join-store.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis join store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  joinStoreContract('Redis', async () => {
    const prefix = `${uniqueName('join')}:`;
    const store = new RedisJoinStore(services.redisUrl!, prefix, 60_000);
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
