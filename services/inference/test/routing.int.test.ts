import { describe } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { RedisRoutingStore } from '../src/registry/routing.js';
import { routingStoreContract } from './routing.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis routing${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  routingStoreContract('Redis', async () => {
    const prefix = `${uniqueName('routing')}:`;
    return deletingKeysOnClose(new RedisRoutingStore({ url: services.redisUrl! }, prefix), services.redisUrl!, prefix);
  });
});
