import { describe } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { RedisJoinStore } from '../src/join-store.js';
import { joinStoreContract } from './join-store.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis join store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  joinStoreContract('Redis', async () => {
    const prefix = `${uniqueName('join')}:`;
    return deletingKeysOnClose(new RedisJoinStore(services.redisUrl!, prefix, 60_000), services.redisUrl!, prefix);
  });
});
