/** What every scenario is given: the real broker and Redis, the mode's sizes, and a place to register clean-ups. */
import { Redis } from 'ioredis';
import { uniqueName } from '../../support/wait-for.js';

export type Mode = 'short' | 'full';

export interface Sizes {
  /** Feature pipeline: SIGKILLs during ingestion, and how long a broker and Redis stay down. */
  featureKills: number;
  brokerDownMs: number;
  redisDownMs: number;
  /** Events published per second to the feature pipeline. */
  featureRate: number;
  /** Inference: concurrent clients, and how long Redis and the brokers stay down. */
  inferenceClients: number;
  inferenceRedisDownMs: number;
  inferenceBrokersDownMs: number;
  /** Prediction-log records the inference service buffers (PREDICTION_LOG_BUFFER) in that scenario. */
  predictionLogBuffer: number;
  /** Monitor: predictions published, and SIGKILLs while labels are joined. */
  monitorPredictions: number;
  monitorKills: number;
  /** Soak: total duration, warm-up, memory sampling interval (a full collection in each process per sample), and the simulator's rate. */
  soakMs: number;
  soakWarmupMs: number;
  soakSampleMs: number;
  soakRate: number;
}

export const SIZES: Record<Mode, Sizes> = {
  short: {
    featureKills: 2,
    brokerDownMs: 6_000,
    redisDownMs: 3_000,
    featureRate: 1_000,
    inferenceClients: 6,
    inferenceRedisDownMs: 4_000,
    inferenceBrokersDownMs: 8_000,
    predictionLogBuffer: 500,
    monitorPredictions: 2_500,
    monitorKills: 2,
    // 90 s: enough for a leak of the size of e590595's (docs/reliability.md); the full soak runs 30 minutes.
    soakMs: 90_000,
    soakWarmupMs: 30_000,
    soakSampleMs: 5_000,
    soakRate: 50,
  },
  full: {
    featureKills: 6,
    brokerDownMs: 20_000,
    redisDownMs: 10_000,
    featureRate: 1_500,
    inferenceClients: 8,
    inferenceRedisDownMs: 15_000,
    inferenceBrokersDownMs: 30_000,
    predictionLogBuffer: 2_000,
    monitorPredictions: 20_000,
    monitorKills: 5,
    soakMs: 30 * 60_000,
    soakWarmupMs: 5 * 60_000,
    soakSampleMs: 30_000,
    soakRate: 50,
  },
};

export interface Context {
  mode: Mode;
  sizes: Sizes;
  brokers: string[];
  /** The mock cluster's control channel (broker down/up, topic creation). */
  control: string;
  /** The shared Redis: scenarios that do not stop Redis use it, under their own key prefix. */
  redisUrl: string;
  /** Random, but repeatable with FAULTS_SEED. */
  seed: number;
  log(message: string): void;
  /** A unique name for a scenario's topics, groups and key prefix. */
  name(prefix: string): string;
  /** Runs at the end of the scenario, newest first, whatever happened. */
  defer(cleanup: () => Promise<unknown>): void;
}

export function environment(): { brokers: string[]; control: string; redisUrl: string } | { missing: string } {
  const brokers = process.env.KAFKA_BROKERS;
  const control = process.env.KAFKA_MOCK_CONTROL;
  const redisUrl = process.env.REDIS_URL;
  const missing = [!brokers && 'KAFKA_BROKERS', !control && 'KAFKA_MOCK_CONTROL', !redisUrl && 'REDIS_URL'].filter(Boolean);
  if (missing.length > 0 || !brokers || !control || !redisUrl) {
    return {
      missing:
        `${missing.join(', ')} not set: the faults suite runs against a real Kafka-protocol broker with a fault-injection control ` +
        `channel (deploy/local/kafka-mock.py --control-file) and a real Redis (see docs/reliability.md)`,
    };
  }
  return { brokers: brokers.split(',').map((b) => b.trim()), control, redisUrl };
}

export function uniqueRun(prefix: string): string {
  return uniqueName(`faults-${prefix}`);
}

/** Deletes a scenario's keys from the shared Redis. */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
