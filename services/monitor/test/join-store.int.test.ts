import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { MemoryJoinStore, OfferError, RedisJoinStore, SweepError, type Offer } from '../src/join-store.js';
import { joinStoreContract, probes, randomOffers } from './join-store.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis join store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  const create = async () => {
    const prefix = `${uniqueName('join')}:`;
    return deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
  };
  joinStoreContract('Redis', create);

  it('counts the sides a sweep removed when another side of it failed, and leaves the failed one for the next sweep', async () => {
    const prefix = `${uniqueName('join')}:`;
    const store = deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      const past = Date.now() - 1_000;
      const offers = ['r1', 'r2', 'r3'].map((requestId) => ({
        side: 'prediction' as const,
        requestId,
        unit: 'champion:m:1',
        value: 'p',
        deadline: past,
      }));
      await store.offer([...offers, { side: 'label', requestId: 'r4', value: 'l', deadline: past }]);
      // r2's hash replaced by a string: its side fails to expire (WRONGTYPE), the others do.
      await client.set(`${prefix}join:{r2}`, 'not a hash');
      const failed = await store.sweep(Date.now(), 100).catch((error: unknown) => error);
      expect(failed).toBeInstanceOf(SweepError);
      expect((failed as SweepError).swept).toEqual({ predictions: 2, labels: 1, taken: 4 });
      expect(await client.zrange(`${prefix}join-due`, 0, -1)).toEqual([JSON.stringify(['p:champion:m:1', 'r2'])]);
      await client.del(`${prefix}join:{r2}`);
      expect(await store.sweep(Date.now(), 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
    } finally {
      await client.quit();
      await store.close();
    }
  });

  it('answers the offers of the script calls that succeeded when another call of the batch failed', async () => {
    const prefix = `${uniqueName('join')}:`;
    const store = deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      const deadline = Date.now() + 60_000;
      const prediction = (requestId: string): Offer => ({
        side: 'prediction',
        requestId,
        unit: 'champion:m:1',
        value: `p:${requestId}`,
        deadline,
      });
      await store.offer([prediction('j1')]);
      // 501 offers: two script calls, of 500 and 1; the second's key is not a hash (WRONGTYPE).
      const offers: Offer[] = [{ side: 'label', requestId: 'j1', value: 'l:j1', deadline }];
      for (let i = 0; i < 499; i++) offers.push(prediction(`f${i}`));
      offers.push(prediction('bad'));
      await client.set(`${prefix}join:{bad}`, 'not a hash');
      const failed = await store.offer(offers).catch((error: unknown) => error);
      expect(failed).toBeInstanceOf(OfferError);
      const { results } = failed as OfferError;
      expect(results).toHaveLength(501);
      expect(results[0]).toEqual({ kind: 'joined', others: ['p:j1'] });
      expect(results.slice(1, 500).every((r) => r?.kind === 'waiting')).toBe(true);
      expect(results[500]).toBeNull();
      // Offered again, the label is a duplicate: its join is only in the error's results.
      expect(await store.offer([offers[0]!])).toEqual([{ kind: 'duplicate' }]);
    } finally {
      await client.quit();
      await store.close();
    }
  });

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
