/**
 * The Redis stores on a real Redis Cluster (three masters started by the test): the
 * online-store, routing-store and label-join contracts, and a flush whose entities lie on
 * every node.
 * Every key of an entity (all its feature groups) shares one slot through its `{…}` tag.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingStoreContract } from '../../services/inference/test/routing.contract.js';
import { RedisRoutingStore } from '../../services/inference/src/registry/routing.js';
import { MemoryJoinStore, RedisJoinStore } from '../../services/monitor/src/join-store.js';
import { joinStoreContract, probes, randomOffers, REPLAY_HORIZON } from '../../services/monitor/test/join-store.contract.js';
import { STORE_ERROR_FIELD } from '../../shared/src/features/feature-read.js';
import { RedisOnlineStore, storedText, type StateWrite } from '../../shared/src/index.js';
import { onlineStoreContract } from '../contract/online-store.contract.js';
import { redisClusterUnavailable, startRedisCluster, type RedisClusterFixture } from '../support/redis-cluster.js';
import { uniqueName } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const unavailable = services.redisUrl ? await redisClusterUnavailable() : services.missing('redis');

describe.skipIf(unavailable !== null)(`Redis Cluster${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  onlineStoreContract(
    'Redis Cluster',
    async () => new RedisOnlineStore({ url: cluster.url, cluster: true, keyPrefix: `${uniqueName('c')}:` }),
  );

  routingStoreContract('Redis Cluster', async () => new RedisRoutingStore({ url: cluster.url, cluster: true }, `${uniqueName('r')}:`));

  joinStoreContract(
    'Redis Cluster',
    async () => new RedisJoinStore({ url: cluster.url, cluster: true }, `${uniqueName('j')}:`, 60_000, REPLAY_HORIZON),
  );

  it('label join: a side whose index entry failed to be written is indexed again when its batch is offered again, and expires counted', async () => {
    const store = new RedisJoinStore({ url: cluster.url, cluster: true }, `${uniqueName('j')}:`, 60_000, REPLAY_HORIZON);
    const client = (store as unknown as { client: { zadd(...args: unknown[]): Promise<unknown> } }).client;
    const zadd = client.zadd.bind(client);
    let failures = 1;
    client.zadd = async (...args: unknown[]) => {
      if (failures-- > 0) throw new Error('CLUSTERDOWN');
      return zadd(...args);
    };
    try {
      const past = Date.now() - 1_000;
      const batch = [
        { side: 'prediction' as const, requestId: 'w1', unit: 'champion:m:1', record: '0:1', value: 'p', deadline: past },
        { side: 'label' as const, requestId: 'w2', record: '0:2', value: 'l', deadline: past },
      ];
      await expect(store.offer(batch)).rejects.toThrow('CLUSTERDOWN');
      // The batch again: answered as at first (the sides still wait); indexed this time.
      expect(await store.offer(batch)).toEqual([{ kind: 'waiting' }, { kind: 'waiting' }]);
      expect(await store.sweep(Date.now(), 100)).toEqual({ predictions: 1, labels: 1, taken: 2 });
    } finally {
      await store.close();
    }
  });

  it('joins labels as the in-memory store does, with the requests of a batch on every node', async () => {
    const prefix = `${uniqueName('j')}:`;
    const redis = new RedisJoinStore({ url: cluster.url, cluster: true }, prefix, 60_000, REPLAY_HORIZON);
    const memory = new MemoryJoinStore(60_000, REPLAY_HORIZON);
    try {
      const offers = randomOffers(13, 2_000, 500);
      for (let start = 0, size = 1; start < offers.length; start += size, size = (size * 7) % 1_201) {
        const calls = offers.slice(start, start + size);
        expect(await redis.offer(calls)).toEqual(await memory.offer(calls));
      }
      expect(await redis.offer(probes(offers))).toEqual(await memory.offer(probes(offers)));
      // The request keys lie on every master; the due index is one key on one of them.
      const perNode = await Promise.all(
        cluster.ports.map(async (port) => {
          const node = new Redis({ port, host: '127.0.0.1' });
          try {
            return (await node.keys(`${prefix}join:*`)).length;
          } finally {
            await node.quit();
          }
        }),
      );
      expect(perNode.every((count) => count > 0)).toBe(true);
      expect(await redis.sweep(Date.now() + 7_200_000, 10_000)).toEqual(await memory.sweep(Date.now() + 7_200_000, 10_000));
    } finally {
      await redis.close();
    }
  });

  it('reads and writes the other keys when one holds another type (a foreign value): that one alone is unreadable and unwritable', async () => {
    const store = new RedisOnlineStore({ url: cluster.url, cluster: true, keyPrefix: `${uniqueName('foreign')}:` });
    const client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    try {
      const key = (id: string) => ({ group: 'user_transactions:v1', entity: 'user_id', id });
      await client.set(store.keyOf(key('foreign')), 'written by something else', 'PX', 60_000);
      const writes: StateWrite[] = ['a', 'foreign', 'b'].map((id) => ({
        key: key(id),
        partition: 0,
        offset: '7',
        set: { s0: `[1,"${id}"]` },
        remove: [],
        ttlMs: 60_000,
      }));
      expect(await store.write(writes)).toEqual([
        { applied: true },
        { applied: false, unwritable: 'the key holds a value of another type (written by something else)' },
        { applied: true },
      ]);
      const [a, foreign, b] = await store.read(writes.map((w) => w.key));
      expect([storedText(a!.s0!), storedText(b!.s0!)]).toEqual(['[1,"a"]', '[1,"b"]']);
      expect(storedText(foreign![STORE_ERROR_FIELD]!)).toMatch(/^WRONGTYPE/);
      expect(await client.get(store.keyOf(key('foreign')))).toBe('written by something else');
    } finally {
      client.disconnect();
      await store.close();
    }
  });

  it('writes a flush whose entities lie on every node in one call, and keeps the groups of an entity in one slot', async () => {
    const store = new RedisOnlineStore({ url: cluster.url, cluster: true, keyPrefix: 'flush:' });
    try {
      const writes: StateWrite[] = [];
      for (let i = 0; i < 300; i++) {
        for (const group of ['user_transactions:v1', 'user_profile:v1']) {
          writes.push({
            key: { group, entity: 'user_id', id: `u${i}` },
            partition: 0,
            offset: '7',
            set: { s0: `[1,${i}]` },
            remove: [],
            ttlMs: 60_000,
          });
        }
      }
      const results = await store.write(writes);
      expect(results).toHaveLength(600);
      expect(results.every((r) => r.applied)).toBe(true);

      const read = await store.read(writes.map((w) => w.key));
      expect(read.map((fields) => (fields?.s0 === undefined ? undefined : storedText(fields.s0)))).toEqual(writes.map((w) => w.set.s0));

      // The keys are spread over all three masters, and both groups of an entity share a slot.
      const perNode = await Promise.all(
        cluster.ports.map(async (port) => {
          const node = new Redis({ port, host: '127.0.0.1' });
          try {
            return (await node.keys('flush:*')).length;
          } finally {
            await node.quit();
          }
        }),
      );
      expect(perNode.every((count) => count > 0)).toBe(true);
      expect(perNode.reduce((a, b) => a + b, 0)).toBe(600);
      const node = new Redis({ port: cluster.ports[0]!, host: '127.0.0.1' });
      try {
        for (let i = 0; i < 300; i += 37) {
          const slots = await Promise.all(
            ['user_transactions:v1', 'user_profile:v1'].map((group) =>
              node.call('CLUSTER', 'KEYSLOT', store.keyOf({ group, entity: 'user_id', id: `u${i}` })),
            ),
          );
          expect(slots[0]).toBe(slots[1]);
        }
      } finally {
        await node.quit();
      }
    } finally {
      await store.close();
    }
  });
});
