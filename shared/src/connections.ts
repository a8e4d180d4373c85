/**
 * Chooses each external system from the configuration: real Kafka and Redis when their
 * addresses are set, the embedded in-memory implementations otherwise.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { KafkaConfig } from 'kafkajs';
import { ConfigError, type Config, type KAFKA_SASL_MECHANISMS } from './config.js';
import { KafkaEventLog, type KafkaEventLogOptions } from './event-log/kafka.js';
import { MemoryEventLog } from './event-log/memory.js';
import type { EventLog } from './event-log/types.js';
import { MemoryOnlineStore } from './online-store/memory.js';
import { RedisOnlineStore } from './online-store/redis.js';
import type { OnlineStore } from './online-store/types.js';
import { describeRedis } from './redis.js';

/** TLS and SASL settings of the Kafka clients, from KAFKA_SSL*, KAFKA_SASL_*. */
export function kafkaSecurity(config: Config): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  let ssl: KafkaConfig['ssl'];
  if (config.KAFKA_SSL_CA_FILE !== undefined) {
    try {
      ssl = { ca: [readFileSync(config.KAFKA_SSL_CA_FILE, 'utf8')] };
    } catch (error) {
      throw new ConfigError(`KAFKA_SSL_CA_FILE=${JSON.stringify(config.KAFKA_SSL_CA_FILE)}: cannot read it (${(error as Error).message})`);
    }
  } else if (config.KAFKA_SSL) ssl = true;
  const mechanism = config.KAFKA_SASL_MECHANISM as (typeof KAFKA_SASL_MECHANISMS)[number] | undefined;
  const credentials = { username: config.KAFKA_SASL_USERNAME!, password: config.KAFKA_SASL_PASSWORD! };
  const sasl: KafkaConfig['sasl'] =
    mechanism === 'plain'
      ? { mechanism, ...credentials }
      : mechanism === 'scram-sha-256'
        ? { mechanism, ...credentials }
        : mechanism === 'scram-sha-512'
          ? { mechanism, ...credentials }
          : undefined;
  return { ...(ssl === undefined ? {} : { ssl }), ...(sasl === undefined ? {} : { sasl }) };
}

/** The same TLS and SASL settings as librdkafka properties (the CA file by its path). */
export function librdkafkaSecurity(config: Config): Record<string, string> {
  const ssl = config.KAFKA_SSL || config.KAFKA_SSL_CA_FILE !== undefined;
  const mechanism = config.KAFKA_SASL_MECHANISM;
  const properties: Record<string, string> = {};
  if (ssl || mechanism !== undefined) {
    properties['security.protocol'] = `${mechanism === undefined ? '' : 'sasl_'}${ssl ? 'ssl' : 'plaintext'}`;
  }
  if (config.KAFKA_SSL_CA_FILE !== undefined) properties['ssl.ca.location'] = config.KAFKA_SSL_CA_FILE;
  if (mechanism !== undefined) {
    properties['sasl.mechanisms'] = mechanism.toUpperCase();
    properties['sasl.username'] = config.KAFKA_SASL_USERNAME!;
    properties['sasl.password'] = config.KAFKA_SASL_PASSWORD!;
  }
  return properties;
}

/** The options of a Kafka client of this process (`clientSuffix` names the part: features, inference, …). */
export function kafkaOptions(config: Config, clientSuffix: string): KafkaEventLogOptions {
  return {
    brokers: config.KAFKA_BROKERS ?? [],
    clientId: `${config.KAFKA_CLIENT_ID}-${clientSuffix}`,
    sessionTimeout: config.KAFKA_SESSION_TIMEOUT,
    maxWaitTimeInMs: config.KAFKA_FETCH_MAX_WAIT,
    kafka: kafkaSecurity(config),
  };
}

export function createEventLog(config: Config, clientSuffix: string, kafkaSettings: Partial<KafkaConfig> = {}): EventLog {
  // A long-running process: records every group has committed past are let go.
  if (!config.KAFKA_BROKERS) return new MemoryEventLog({ releaseCommitted: true });
  const options = kafkaOptions(config, clientSuffix);
  return new KafkaEventLog({ ...options, kafka: { ...options.kafka, ...kafkaSettings } });
}

/**
 * Fails at once, naming each address and why, when no broker of `brokers` accepts a TCP
 * connection within `timeoutMs`. kafkajs would retry for ~40 s and log every attempt; a
 * command-line tool checks this first, reports what failed and stops.
 */
export async function checkBrokersReachable(brokers: string[], timeoutMs = 3_000): Promise<void> {
  const failures = await Promise.all(brokers.map((address) => connectionFailure(address, timeoutMs)));
  if (failures.some((failure) => failure === null)) return;
  throw new Error(`no Kafka broker of KAFKA_BROKERS answers: ${brokers.map((broker, i) => `${broker} (${failures[i]})`).join(', ')}`);
}

/** Why a TCP connection to `host:port` failed, or null when it was accepted. */
function connectionFailure(address: string, timeoutMs: number): Promise<string | null> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const settle = (failure: string | null) => {
      socket.destroy();
      resolve(failure);
    };
    socket.setTimeout(timeoutMs, () => settle(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => settle(null));
    socket.once('error', (error: NodeJS.ErrnoException) => settle(error.code ?? error.message));
  });
}

export function createOnlineStore(config: Config): OnlineStore {
  return config.REDIS_URL
    ? new RedisOnlineStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER, keyPrefix: config.REDIS_KEY_PREFIX })
    : new MemoryOnlineStore();
}

export function describeBackends(config: Config): string {
  const security = [
    config.KAFKA_SSL || config.KAFKA_SSL_CA_FILE ? 'TLS' : '',
    config.KAFKA_SASL_MECHANISM ? `SASL ${config.KAFKA_SASL_MECHANISM}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `event log: ${config.KAFKA_BROKERS ? `Kafka ${config.KAFKA_BROKERS.join(',')}${security ? ` (${security})` : ''}` : 'embedded (in memory)'}; online store: ${
    config.REDIS_URL ? describeRedis({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }) : 'embedded (in memory)'
  }`;
}
