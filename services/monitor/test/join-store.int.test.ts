import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { startTcpProxy } from '../../../test/support/tcp-proxy.js';
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
        record: `p:${requestId}`,
        value: 'p',
        deadline: past,
      }));
      await store.offer([...offers, { side: 'label', requestId: 'r4', record: 'l:r4', value: 'l', deadline: past }]);
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
        record: `p:${requestId}`,
        value: `p:${requestId}`,
        deadline,
      });
      await store.offer([prediction('j1')]);
      // 501 offers: two script calls, of 500 and 1; the second's key is not a hash (WRONGTYPE).
      const offers: Offer[] = [{ side: 'label', requestId: 'j1', record: 'l:j1', value: 'l:j1', deadline }];
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
      // Offered again (the batch retried), the label gets its first answer; another label is a duplicate.
      expect(await store.offer([offers[0]!, { ...offers[0]!, record: 'l:j1:2' }])).toEqual([
        { kind: 'joined', others: ['p:j1'], again: true },
        { kind: 'duplicate' },
      ]);
    } finally {
      await client.quit();
      await store.close();
    }
  });

  it('answers the offers of a call whose reply was lost (Redis ran it, the connection dropped) as first when they are offered again', async () => {
    const prefix = `${uniqueName('join')}:`;
    const proxy = await startTcpProxy({ host: new URL(services.redisUrl!).hostname, port: Number(new URL(services.redisUrl!).port) });
    const store = deletingKeysOnClose(new RedisJoinStore({ url: `redis://${proxy.address}` }, prefix, 60_000), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      const deadline = Date.now() + 60_000;
      const side = (side: 'prediction' | 'label', requestId: string, unit = 'champion:m:1'): Offer =>
        side === 'label'
          ? { side, requestId, record: `l:${requestId}`, value: `l:${requestId}`, deadline }
          : { side, requestId, unit, record: `p:${requestId}:${unit}`, value: `p:${requestId}:${unit}`, deadline };
      // a: champion and shadow waiting; b: the label waiting.
      expect(await store.offer([side('prediction', 'a'), side('prediction', 'a', 'shadow:m:2'), side('label', 'b')])).toEqual(
        Array.from({ length: 3 }, () => ({ kind: 'waiting' })),
      );
      const batch = [side('label', 'a'), side('prediction', 'b'), side('prediction', 'c')];
      const lost = proxy.loseNextReply();
      // The client sends the call again once reconnected (ioredis resends what got no reply), so
      // Redis runs it twice; or it fails, and the batch is retried.
      const first = await store.offer(batch).catch((error: unknown) => error);
      await lost;
      // Redis ran the call whose reply was lost: a's label is there, and joined.
      expect(await client.hexists(`${prefix}join:{a}`, 'labelled')).toBe(1);
      const answers = Array.isArray(first) ? first : await store.offer(batch);
      expect(answers).toEqual([
        { kind: 'joined', others: ['p:a:champion:m:1', 'p:a:shadow:m:2'], again: true },
        { kind: 'joined', others: ['l:b'], again: true },
        { kind: 'waiting' },
      ]);
      // Whatever more times the batch comes.
      expect(await store.offer(batch)).toEqual(answers);
    } finally {
      await client.quit();
      await store.close();
      await proxy.close();
    }
  });

  it('writes the hash of a joined request anew once its predictions are due: compact, with its fields and its expiry', async () => {
    const prefix = `${uniqueName('join')}:`;
    const store = deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      const now = Date.now();
      // A prediction's value longer than a listpack takes (64 bytes by default): the hash is a hashtable.
      const value = JSON.stringify({ model: 'fraud_detector', version: '1', variant: 'champion', score: 0.25, predicted_at: now });
      const prediction: Offer = { side: 'prediction', requestId: 'k', unit: 'champion:m:1', record: '0:1', value, deadline: now - 10 };
      const label: Offer = { side: 'label', requestId: 'k', record: '0:2', value: 'l', deadline: now + 60_000 };
      expect(await store.offer([prediction, label])).toEqual([{ kind: 'waiting' }, { kind: 'joined', others: [value] }]);
      const key = `${prefix}join:{k}`;
      expect(await client.object('ENCODING', key)).toBe('hashtable');
      const fields = await client.hgetall(key);
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
      expect(await client.object('ENCODING', key)).not.toBe('hashtable');
      const { 'p:champion:m:1': _prediction, ...left } = fields;
      expect(await client.hgetall(key)).toEqual(left);
      expect(await client.pttl(key)).toBeGreaterThan(60_000);
      // And it answers as before: the label's join is past, the label still there.
      expect(await store.offer([label, { ...label, record: '0:3' }])).toEqual([{ kind: 'duplicate' }, { kind: 'duplicate' }]);
    } finally {
      await client.quit();
      await store.close();
    }
  });

  it('reads the hashes of the layout without records: their sides are no record of an offer', async () => {
    const prefix = `${uniqueName('join')}:`;
    const store = deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000), services.redisUrl!, prefix);
    const client = new Redis(services.redisUrl!);
    try {
      const deadline = Date.now() + 60_000;
      // w: a prediction waiting; x: a label that joined the champion.
      await client.hset(`${prefix}join:{w}`, 'p:champion:m:1', '{"p":"w"}');
      await client.hset(`${prefix}join:{x}`, 'label', '{"l":"x"}', 'labelled', '1', 'j:champion:m:1', '1');
      const prediction = (requestId: string, unit: string, record: string): Offer => ({
        side: 'prediction',
        requestId,
        unit,
        record,
        value: `{"p":"${requestId}"}`,
        deadline,
      });
      const label = (requestId: string, record: string): Offer => ({
        side: 'label',
        requestId,
        record,
        value: `{"l":"${requestId}"}`,
        deadline,
      });
      expect(
        await store.offer([
          prediction('w', 'champion:m:1', '0:1'),
          label('w', '0:2'),
          label('w', '0:2'),
          prediction('x', 'champion:m:1', '0:3'),
          prediction('x', 'shadow:m:2', '0:4'),
          label('x', '0:5'),
        ]),
      ).toEqual([
        { kind: 'duplicate' },
        { kind: 'joined', others: ['{"p":"w"}'] },
        { kind: 'joined', others: ['{"p":"w"}'], again: true },
        { kind: 'duplicate' },
        { kind: 'joined', others: ['{"l":"x"}'] },
        { kind: 'duplicate' },
      ]);
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
