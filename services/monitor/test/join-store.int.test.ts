import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { startTcpProxy } from '../../../test/support/tcp-proxy.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { MemoryJoinStore, OfferError, RedisJoinStore, SweepError, type Offer } from '../src/join-store.js';
import { joinStoreContract, probes, randomOffers, REPLAY_HORIZON } from './join-store.contract.js';

const services = realServices();

describe.skipIf(!services.redisUrl)(`Redis join store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  const create = async () => {
    const prefix = `${uniqueName('join')}:`;
    return deletingKeysOnClose(new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000, REPLAY_HORIZON), services.redisUrl!, prefix);
  };
  joinStoreContract('Redis', create);

  /** A store of its own key prefix and a plain client of the same Redis, both closed (and the keys deleted) after `use`. */
  const withStore = async (use: (store: RedisJoinStore, client: Redis, prefix: string) => Promise<void>) => {
    const prefix = `${uniqueName('join')}:`;
    const store = deletingKeysOnClose(
      new RedisJoinStore({ url: services.redisUrl! }, prefix, 60_000, REPLAY_HORIZON),
      services.redisUrl!,
      prefix,
    );
    const client = new Redis(services.redisUrl!);
    try {
      await use(store, client, prefix);
    } finally {
      await client.quit();
      await store.close();
    }
  };

  it('counts the sides a sweep removed when another side of it failed, and leaves the failed one for the next sweep', () =>
    withStore(async (store, client, prefix) => {
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
    }));

  it('answers unusable for an offer whose request key holds another type, leaves that key as it is, and the other offers of the call as usual', () =>
    withStore(async (store, client, prefix) => {
      const deadline = Date.now() + 60_000;
      await client.set(`${prefix}join:{foreign}`, 'not a hash', 'PX', 60_000);
      const prediction = (requestId: string): Offer => ({
        side: 'prediction',
        requestId,
        unit: 'champion:m:1',
        record: `p:${requestId}`,
        value: 'p',
        deadline,
      });
      const label = (requestId: string): Offer => ({ side: 'label', requestId, record: `l:${requestId}`, value: 'l', deadline });
      expect(await store.offer([prediction('a'), prediction('foreign'), label('foreign'), label('a')])).toEqual([
        { kind: 'waiting' },
        { kind: 'unusable' },
        { kind: 'unusable' },
        { kind: 'joined', others: ['p'] },
      ]);
      expect(await client.get(`${prefix}join:{foreign}`)).toBe('not a hash');
      // Nothing of it in the due index: a sweep finds only request a's sides.
      expect((await client.zrange(`${prefix}join-due`, 0, -1)).filter((member) => member.includes('foreign'))).toEqual([]);
    }));

  it('keeps in the due index a side offered again while a sweep expired the one before it, and sweeps it at its own deadline', () =>
    withStore(async (store, client, prefix) => {
      const now = Date.now();
      await store.offer([{ side: 'label', requestId: 'r1', record: 'l:1', value: 'l1', deadline: now - 1_000 }]);
      // The sweep's scripts have expired the old label when a new label of the request comes, before the sweep's index
      // removal: as another monitor's offer would, between the two.
      const index = store as unknown as { client: { removeDue: (...args: string[]) => Promise<number> } };
      const removeDue = index.client.removeDue.bind(index.client);
      index.client.removeDue = async (...args) => {
        await store.offer([{ side: 'label', requestId: 'r1', record: 'l:2', value: 'l2', deadline: now + 60_000 }]);
        return removeDue(...args);
      };
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 1, taken: 1 });
      index.client.removeDue = removeDue;
      expect(await client.zrange(`${prefix}join-due`, 0, -1)).toEqual([JSON.stringify(['label', 'r1'])]);
      expect(await store.sweep(now + 61_000, 100)).toEqual({ predictions: 0, labels: 1, taken: 1 });
    }));

  it('answers the offers of the script calls that succeeded when another call of the batch failed', () =>
    withStore(async (store) => {
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
      // 501 offers: two script calls, of 500 and 1; the second fails (a deadline that is no number: its script raises).
      const offers: Offer[] = [{ side: 'label', requestId: 'j1', record: 'l:j1', value: 'l:j1', deadline }];
      for (let i = 0; i < 499; i++) offers.push(prediction(`f${i}`));
      offers.push({ ...prediction('bad'), deadline: NaN });
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
    }));

  it('answers the offers of a call whose reply was lost (Redis ran it, the connection dropped) as first when they are offered again', async () => {
    const prefix = `${uniqueName('join')}:`;
    const proxy = await startTcpProxy({ host: new URL(services.redisUrl!).hostname, port: Number(new URL(services.redisUrl!).port) });
    const store = deletingKeysOnClose(
      new RedisJoinStore({ url: `redis://${proxy.address}` }, prefix, 60_000, REPLAY_HORIZON),
      services.redisUrl!,
      prefix,
    );
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

  it('writes the hash of a joined request anew once its predictions are due: compact, with its fields and its expiry', () =>
    withStore(async (store, client, prefix) => {
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
    }));

  it('moves a prediction the label joined to the replay horizon in the due index (its own entry, whatever its unit), and writes its hash anew, compact, when it goes there', () =>
    withStore(async (store, client, prefix) => {
      const before = Date.now();
      const deadline = before + 3_600_000;
      // Values longer than a listpack takes (64 bytes by default): the hash is a hashtable.
      const value = (variant: string) =>
        JSON.stringify({ model: 'fraud_detector', version: '1', variant, score: 0.25, predicted_at: before });
      // A unit with what JSON escapes (the script writes its member in the index as JSON.stringify does).
      const odd = 'shadow:"m"\\2\n\t\u0001\u007f\u00e9/\u2028:3';
      const offers: Offer[] = [
        { side: 'prediction', requestId: 'h', unit: 'champion:m:1', record: '0:1', value: value('champion'), deadline },
        { side: 'prediction', requestId: 'h', unit: odd, record: '0:2', value: value('shadow'), deadline },
        { side: 'label', requestId: 'h', record: '1:1', value: 'l', deadline },
      ];
      expect(await store.offer(offers)).toEqual([
        { kind: 'waiting' },
        { kind: 'waiting' },
        { kind: 'joined', others: [value('champion'), value('shadow')] },
      ]);
      const after = Date.now();
      const key = `${prefix}join:{h}`;
      const fields = await client.hgetall(key);
      expect(await client.object('ENCODING', key)).toBe('hashtable');
      // One entry per side: the predictions' moved to the horizon, the label's at its deadline.
      const index = await client.zrange(`${prefix}join-due`, 0, -1, 'WITHSCORES');
      const entries = new Map<string, number>();
      for (let i = 0; i < index.length; i += 2) entries.set(index[i]!, Number(index[i + 1]));
      expect([...entries.keys()].sort()).toEqual(
        [JSON.stringify(['p:champion:m:1', 'h']), JSON.stringify([`p:${odd}`, 'h']), JSON.stringify(['label', 'h'])].sort(),
      );
      for (const unit of ['champion:m:1', odd]) {
        const score = entries.get(JSON.stringify([`p:${unit}`, 'h']))!;
        expect(score).toBeGreaterThanOrEqual(before + REPLAY_HORIZON);
        expect(score).toBeLessThanOrEqual(after + REPLAY_HORIZON);
      }
      expect(entries.get(JSON.stringify(['label', 'h']))).toBe(deadline);
      // At the horizon, the predictions go, uncounted; the hash keeps the rest, compact, and its expiry.
      expect(await store.sweep(after + REPLAY_HORIZON, 100)).toEqual({ predictions: 0, labels: 0, taken: 2 });
      expect(await client.object('ENCODING', key)).not.toBe('hashtable');
      const left = Object.fromEntries(Object.entries(fields).filter(([field]) => !field.startsWith('p:')));
      expect(await client.hgetall(key)).toEqual(left);
      expect(await client.pttl(key)).toBeGreaterThan(3_600_000);
      expect(await client.zrange(`${prefix}join-due`, 0, -1)).toEqual([JSON.stringify(['label', 'h'])]);
    }));

  it('moves the predictions joined by one script call to the replay horizon, however many (more than Lua unpacks at once)', () =>
    withStore(async (store, client, prefix) => {
      const deadline = Date.now() + 3_600_000;
      // 500 requests (one script call of labels) with a champion and 8 shadows each: 4,500 predictions.
      const requests = Array.from({ length: 500 }, (_, i) => `r${i}`);
      const predictions = requests.flatMap((requestId) =>
        Array.from({ length: 9 }, (_, u): Offer => ({
          side: 'prediction',
          requestId,
          unit: `v${u}:m:1`,
          record: `0:${requestId}:${u}`,
          value: 'p',
          deadline,
        })),
      );
      await store.offer(predictions);
      const labels = requests.map((requestId): Offer => ({ side: 'label', requestId, record: `1:${requestId}`, value: 'l', deadline }));
      expect((await store.offer(labels)).every((answer) => answer.kind === 'joined' && answer.others.length === 9)).toBe(true);
      const after = Date.now();
      expect(await client.zcount(`${prefix}join-due`, '-inf', after + REPLAY_HORIZON)).toBe(4_500);
      expect(await store.sweep(after + REPLAY_HORIZON, 10_000)).toEqual({ predictions: 0, labels: 0, taken: 4_500 });
    }));

  it('joins a label to more predictions of one request than Lua unpacks at once, and removes them when due', () =>
    withStore(async (store, client, prefix) => {
      const deadline = Date.now() + 3_600_000;
      // One request with 4,100 prediction units: its label marks 8,204 fields and values at once, and
      // the sweep rewrites the hash's 8,204 once the last prediction leaves it.
      const units = Array.from({ length: 4_100 }, (_, u) => `v${String(u).padStart(4, '0')}:m:1`);
      const predictions = units.map((unit, u): Offer => ({
        side: 'prediction',
        requestId: 'big',
        unit,
        record: `0:${u}`,
        value: unit,
        deadline,
      }));
      expect((await store.offer(predictions)).every((answer) => answer.kind === 'waiting')).toBe(true);
      expect(await store.offer([{ side: 'label', requestId: 'big', record: '1:0', value: 'l', deadline }])).toEqual([
        { kind: 'joined', others: units },
      ]);
      const after = Date.now();
      expect(await store.sweep(after + REPLAY_HORIZON, 10_000)).toEqual({ predictions: 0, labels: 0, taken: 4_100 });
      const left = await client.hgetall(`${prefix}join:{big}`);
      expect(Object.keys(left).filter((field) => field.startsWith('j:'))).toHaveLength(4_100);
      expect([left.labelled, Object.keys(left).some((field) => field.startsWith('p:'))]).toEqual(['1', false]);
    }));

  it('reads the hashes of the layout without records: their sides are no record of an offer', () =>
    withStore(async (store, client, prefix) => {
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
    }));

  it('answers a stream of offers, in calls of any size, as the in-memory store does', async () => {
    const offers = randomOffers(11, 3_000, 700);
    const redis = await create();
    const memory = new MemoryJoinStore(60_000, REPLAY_HORIZON);
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
