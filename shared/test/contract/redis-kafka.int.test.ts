import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { realServices } from '../../../test/integration/services.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import type { TopicSpec } from '../../src/event-log/types.js';
import { RedisOnlineStore } from '../../src/online-store/redis.js';
import { applyEvent, emptyState, fraud, readFeatureValues, stateFields, type EntityKey } from '../../src/index.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { createTopic } from '../../../test/support/topics.js';
import { uniqueName } from '../../../test/support/wait-for.js';

const services = realServices();

// Without the real services these suites are reported skipped, with the reason; CI
// (TRIBUTARY_REQUIRE_INTEGRATION=1) fails instead, and .ci/run fails on any skipped integration test.
describe.skipIf(!services.redisUrl)(`Redis${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  onlineStoreContract('Redis', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    return deletingKeysOnClose(new RedisOnlineStore({ url: services.redisUrl!, keyPrefix }), services.redisUrl!, keyPrefix);
  });

  it('reads the other keys of a call when one is no hash (a foreign value): that one alone is unreadable', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    const store = deletingKeysOnClose(new RedisOnlineStore({ url: services.redisUrl!, keyPrefix }), services.redisUrl!, keyPrefix);
    const client = new Redis(services.redisUrl!);
    try {
      const group = fraud.fraudExample().groups.find((g) => g.entity === 'user_id')!;
      const good: EntityKey = { group: group.id, entity: 'user_id', id: 'good' };
      const foreign: EntityKey = { ...good, id: 'foreign' };
      const state = emptyState();
      applyEvent(group, state, { time: Date.now(), values: { amount: 5, merchant_id: 'm1', country: 'US', channel: 'web' } });
      await store.write([{ key: good, partition: 0, offset: '1', set: stateFields(0, state), remove: [], ttlMs: 60_000 }]);
      await client.set(store.keyOf(foreign), 'written by something else', 'PX', 60_000);
      const [read, unreadable] = await store.read([good, foreign]);
      expect(readFeatureValues(group, read!, Date.now()).values.count_1h).toBe(1);
      expect(() => readFeatureValues(group, unreadable!, Date.now())).toThrow(/^not a feature state: WRONGTYPE/);
    } finally {
      client.disconnect();
      await store.close();
    }
  });
});

describe.skipIf(!services.redisUrl)(`Redis writes${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`, () => {
  it('write the other keys of a call when one is no hash (a foreign value): that one is refused as unwritable and left as it is', async () => {
    const keyPrefix = `${uniqueName('test')}:`;
    const store = deletingKeysOnClose(new RedisOnlineStore({ url: services.redisUrl!, keyPrefix }), services.redisUrl!, keyPrefix);
    const client = new Redis(services.redisUrl!);
    try {
      const group = fraud.fraudExample().groups.find((g) => g.entity === 'user_id')!;
      const key = (id: string): EntityKey => ({ group: group.id, entity: 'user_id', id });
      await client.set(store.keyOf(key('foreign')), 'written by something else', 'PX', 60_000);
      const state = emptyState();
      applyEvent(group, state, { time: Date.now(), values: { amount: 5, merchant_id: 'm1', country: 'US', channel: 'web' } });
      const set = stateFields(0, state);
      // A flush's form (one field at one offset: the shared-argument script), and the general one (a field removed).
      const flush = await store.write(
        ['a', 'foreign', 'b'].map((id) => ({ key: key(id), partition: 0, offset: '7', set, remove: [], ttlMs: 60_000 })),
      );
      const general = await store.write(
        ['c', 'foreign', 'd'].map((id) => ({ key: key(id), partition: 0, offset: '8', set, remove: ['s9'], ttlMs: 60_000 })),
      );
      for (const results of [flush, general]) {
        expect(results).toEqual([
          { applied: true },
          { applied: false, unwritable: 'the key holds a value of another type (written by something else)' },
          { applied: true },
        ]);
      }
      expect(await client.get(store.keyOf(key('foreign')))).toBe('written by something else');
      // A stored offset that is no number fences nothing: both forms write over it.
      await client.hset(store.keyOf(key('e')), '_o0', 'garbage');
      await client.hset(store.keyOf(key('f')), '_o0', 'garbage');
      expect(await store.write([{ key: key('e'), partition: 0, offset: '9', set, remove: [], ttlMs: 60_000 }])).toEqual([
        { applied: true },
      ]);
      expect(await store.write([{ key: key('f'), partition: 0, offset: '9', set, remove: ['s9'], ttlMs: 60_000 }])).toEqual([
        { applied: true },
      ]);
      // The label join's sides: a key of another type where the other side is kept reads as none, and is replaced by this side.
      const side = `${keyPrefix}kv:{pair}:lbl`;
      await client.hset(side, 'x', '1');
      expect(await store.meet([{ pair: 'pair', side: 'txn', other: 'lbl', value: 'm1', ttlMs: 60_000 }])).toEqual([null]);
      expect(await store.meet([{ pair: 'pair', side: 'lbl', other: 'txn', value: 'l', ttlMs: 60_000 }])).toEqual(['m1']);
      expect(await client.type(side)).toBe('hash');
      // An event-id log's chunks that cannot be read are left out, the others read.
      await store.writeEventIds({ log: 'transactions:0', add: { name: 'c1', ids: [['e1', 5]] }, remove: [], ttlMs: 60_000 });
      const log = (await client.keys(`${keyPrefix}*event-ids*`))[0]!;
      await client.hset(log, 'c2', 'not json', 'c3', '[["e2"],[1,2]]', 'c4', '{}');
      expect(await store.readEventIds('transactions:0')).toEqual([{ name: 'c1', ids: [['e1', 5]] }]);
      expect(await client.hget(store.keyOf(key('e')), '_o0')).toBe('9');
      expect(await client.hget(store.keyOf(key('f')), '_o0')).toBe('9');
      const read = await store.read(['a', 'b', 'c', 'd'].map(key));
      expect(read.map((fields) => readFeatureValues(group, fields!, Date.now()).values.count_1h)).toEqual([1, 1, 1, 1]);
    } finally {
      client.disconnect();
      await store.close();
    }
  });
});

/**
 * The Kafka event log, its topics created as the integration tests create theirs (createTopic: the
 * admin API, or the control channel of librdkafka's mock cluster, which the admin API cannot
 * create topics on), with the partitions asked.
 */
class ContractKafkaEventLog extends KafkaEventLog {
  override async ensureTopics(topics: TopicSpec[]): Promise<TopicSpec[]> {
    for (const { name, partitions } of topics) await createTopic(services.kafkaBrokers!, name, partitions);
    return [];
  }
}

describe.skipIf(!services.kafkaBrokers)(`Kafka${services.kafkaBrokers ? '' : ` (skipped: ${services.missing('kafka')})`}`, () => {
  eventLogContract(
    'Kafka',
    async () => new ContractKafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'contract-test', sessionTimeout: 6_000 }),
    {
      timeoutMs: 30_000,
    },
  );
});
