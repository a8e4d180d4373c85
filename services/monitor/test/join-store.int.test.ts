import { describe, expect, it } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { MemoryJoinStore, RedisJoinStore } from '../src/join-store.js';
import { joinStoreContract, probes, randomOffers } from './join-store.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis join store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  const create = async () => {
    const prefix = `${uniqueName('join')}:`;
    return deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
  };
  joinStoreContract('Redis', create);

  it('answers a stream of offers, in calls of any size, as the in-memory store does', async () => {
    const offers = randomOffers(11, 3_000, 700);
    const redis = await create();
    const memory = new MemoryJoinStore(60_000);
    try {
      for (let start = 0, size = 1; start < offers.length; start += size, size = (size * 7) % 1_201) {
        const calls = offers.slice(start, start + size);
        expect(await redis.offer(calls)).toEqual(await memory.offer(calls));
      }
      expect(await redis.offer(probes(offers))).toEqual(await memory.offer(probes(offers)));
      expect(await redis.sweep(Date.now() + 7_200_000, 10_000)).toEqual(await memory.sweep(Date.now() + 7_200_000, 10_000));
    } finally {
      await redis.close();
    }
  });
});
