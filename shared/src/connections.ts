/**
 * Chooses each external system from the configuration: real Kafka and Redis when their
 * addresses are set, the embedded in-memory implementations otherwise.
 */
import type { Config } from './config.js';
import { KafkaEventLog } from './event-log/kafka.js';
import { MemoryEventLog } from './event-log/memory.js';
import type { EventLog } from './event-log/types.js';
import { MemoryOnlineStore } from './online-store/memory.js';
import { RedisOnlineStore } from './online-store/redis.js';
import type { OnlineStore } from './online-store/types.js';
import { describeRedis } from './redis.js';

export function createEventLog(config: Config, clientSuffix: string): EventLog {
  return config.KAFKA_BROKERS
    ? new KafkaEventLog({
        brokers: config.KAFKA_BROKERS,
        clientId: `${config.KAFKA_CLIENT_ID}-${clientSuffix}`,
        sessionTimeout: config.KAFKA_SESSION_TIMEOUT,
      })
    : new MemoryEventLog();
}

export function createOnlineStore(config: Config): OnlineStore {
  return config.REDIS_URL
    ? new RedisOnlineStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER, keyPrefix: config.REDIS_KEY_PREFIX })
    : new MemoryOnlineStore();
}

export function describeBackends(config: Config): string {
  return `event log: ${config.KAFKA_BROKERS ? `Kafka ${config.KAFKA_BROKERS.join(',')}` : 'embedded (in memory)'}; online store: ${
    config.REDIS_URL ? describeRedis({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }) : 'embedded (in memory)'
  }`;
}
