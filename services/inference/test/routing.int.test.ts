import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { TributaryError } from '@tributary/shared';
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

  it('answers what something else wrote in its keys with a clear 503 error or leaves it out, never a parse failure', async () => {
    const prefix = `${uniqueName('damaged')}:`;
    const routes = deletingKeysOnClose(new RedisRoutingStore({ url: services.redisUrl! }, prefix), services.redisUrl!, prefix);
    const rewards = deletingKeysOnClose(new RedisRewardStore({ url: services.redisUrl! }, prefix), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      for (const stored of ['not json', '{"champion":1}', 'null']) {
        await client.set(`${prefix}routing:{m}`, stored);
        const refused = await routes.get('m').catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(TributaryError);
        expect(refused).toMatchObject({
          code: 'ROUTING_STORE_UNAVAILABLE',
          message: `the routing store holds no routing of m at ${prefix}routing:{m} (written by something else, or damaged): delete that key, and the serving replicas write back the routing they serve at their next poll`,
        });
      }
      const entry = {
        revision: 1,
        action: 'promote',
        model: 'm',
        by: 'ops',
        reason: 'r',
        at: '2026-12-03T00:00:00.000Z',
        from: null,
        to: '1',
      };
      await client.rpush(`${prefix}routing:{m}:audit`, JSON.stringify(entry), 'not json', '7');
      expect(await routes.audit('m', 10)).toEqual([entry]);
      await client.hset(`${prefix}rewards:{m}`, '2:t', 'abc', '2:r', '1', '3:t', '-5');
      expect(await rewards.get('m')).toMatchObject({ '2': { trials: 0, reward: 1 }, '3': { trials: 0, reward: 0 } });
      const added = await rewards.add('m', '2', 1, 1).catch((error: unknown) => error);
      expect(added).toBeInstanceOf(TributaryError);
      expect((added as TributaryError).code).toBe('ROUTING_STORE_UNAVAILABLE');
      expect((added as TributaryError).message).toMatch(
        /^the reward store cannot add to .*rewards:\{m\} \(ERR hash value is not a float\)/,
      );
    } finally {
      client.disconnect();
      await rewards.close();
      await routes.close();
    }
  });
});
