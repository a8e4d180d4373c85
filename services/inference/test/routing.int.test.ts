import { describe, expect, it } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { RedisRewardStore } from '../src/registry/rewards.js';
import { RedisRoutingStore } from '../src/registry/routing.js';
import { routingStoreContract } from './routing.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis routing${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  routingStoreContract('Redis', async () => {
    const prefix = `${uniqueName('routing')}:`;
    return deletingKeysOnClose(new RedisRoutingStore({ url: services.redisUrl! }, prefix), services.redisUrl!, prefix);
  });

  it('reads rewards stored under a version named __proto__ as an entry, without touching Object.prototype', async () => {
    const prefix = `${uniqueName('rewards')}:`;
    const rewards = deletingKeysOnClose(new RedisRewardStore({ url: services.redisUrl! }, prefix), services.redisUrl!, prefix);
    try {
      // Written before versions were checked for such names (or by another client).
      await rewards.add('m', '__proto__', 4, 3);
      await rewards.add('m', '2', 2, 1);
      const read = await rewards.get('m');
      expect(({} as Record<string, unknown>).trials).toBeUndefined();
      expect(Object.hasOwn(read, '__proto__')).toBe(true);
      expect(read['__proto__']).toEqual({ trials: 4, reward: 3 });
      expect(read['2']).toEqual({ trials: 2, reward: 1 });
    } finally {
      await rewards.close();
    }
  });
});
