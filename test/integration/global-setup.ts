/**
 * Finds the Kafka and Redis the integration tests run against: KAFKA_BROKERS / REDIS_URL
 * when set, else containers started through testcontainers when a Docker engine answers,
 * else none, and the tests are reported skipped with the reason. With
 * TRIBUTARY_REQUIRE_INTEGRATION=1 (CI) a missing service fails the run instead. Containers
 * started for one integration project are handed on to the next through the same variables.
 */
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
    integrationSkipReason: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let kafkaBrokers = process.env.KAFKA_BROKERS ?? '';
  let redisUrl = process.env.REDIS_URL ?? '';
  const stops: (() => Promise<unknown>)[] = [];
  let reason = '';
  if (!kafkaBrokers || !redisUrl) {
    try {
      if (!redisUrl) {
        const { RedisContainer } = await import('@testcontainers/redis');
        const redis = await new RedisContainer('redis:7-alpine').start();
        stops.push(() => redis.stop());
        redisUrl = redis.getConnectionUrl();
        process.env.REDIS_URL = redisUrl;
      }
      if (!kafkaBrokers) {
        const { KafkaContainer } = await import('@testcontainers/kafka');
        const kafka = await new KafkaContainer('confluentinc/cp-kafka:7.7.1').withKraft().start();
        stops.push(() => kafka.stop());
        kafkaBrokers = `${kafka.getHost()}:${kafka.getMappedPort(9093)}`;
        process.env.KAFKA_BROKERS = kafkaBrokers;
      }
    } catch (error) {
      reason = `no KAFKA_BROKERS/REDIS_URL set and testcontainers could not start them (${(error as Error).message.split('\n')[0]})`;
      kafkaBrokers = process.env.KAFKA_BROKERS ?? '';
      redisUrl = process.env.REDIS_URL ?? '';
    }
  }
  if (reason && process.env.TRIBUTARY_REQUIRE_INTEGRATION === '1') {
    throw new Error(`integration tests are required (TRIBUTARY_REQUIRE_INTEGRATION=1) but ${reason}`);
  }
  if (reason) console.warn(`[integration] skipping what needs the missing services: ${reason}`);
  project.provide('kafkaBrokers', kafkaBrokers);
  project.provide('redisUrl', redisUrl);
  project.provide('integrationSkipReason', reason);
  return async () => {
    for (const stop of stops) await stop();
  };
}
