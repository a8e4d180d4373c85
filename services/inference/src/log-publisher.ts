/**
 * The prediction log's Kafka producers: librdkafka's (its own threads encode and send) or
 * kafkajs's in a worker thread, chosen by PREDICTION_LOG_PRODUCER.
 */
import { Piscina } from 'piscina';
import {
  kafkaOptions,
  LibrdkafkaProducer,
  librdkafka,
  librdkafkaSecurity,
  type Config,
  type KafkaEventLogOptions,
  type Logger,
  type OutgoingRecord,
} from '@tributary/shared';
import type { PublishTask } from './log-publisher-worker.js';
import type { PredictionPublisher } from './prediction-log.js';

/**
 * `close` stops producing at once: a batch still in flight is abandoned (the prediction log has
 * waited for it up to its deadline, and counts what it still holds as dropped).
 */
export type ClosablePublisher = PredictionPublisher & { close(): Promise<void> };

/** Reports librdkafka's problems (a broker down, ...) at most once per this long, with a count. */
const PROBLEM_LOG_INTERVAL_MS = 30_000;

/**
 * The producer PREDICTION_LOG_PRODUCER names (`auto`: librdkafka where it loads). Throws when
 * `librdkafka` is asked for and cannot be had, or refuses a setting.
 */
export function predictionPublisher(config: Config, logger: Logger): ClosablePublisher {
  const choice = config.PREDICTION_LOG_PRODUCER;
  const lib = choice === 'kafkajs' ? undefined : librdkafka();
  if (lib === undefined || (lib instanceof Error && choice === 'auto')) {
    if (lib instanceof Error) logger.info(`prediction log: produced with kafkajs in a worker thread (${lib.message})`);
    return new WorkerPublisher(kafkaOptions(config, 'inference-log'));
  }
  if (lib instanceof Error) throw new Error(`PREDICTION_LOG_PRODUCER=librdkafka: ${lib.message}`);
  logger.info(`prediction log: produced with librdkafka ${lib.versionText()}`);
  let last = 0;
  let unreported = 0;
  const producer = new LibrdkafkaProducer({
    brokers: config.KAFKA_BROKERS ?? [],
    clientId: `${config.KAFKA_CLIENT_ID}-inference-log`,
    properties: librdkafkaSecurity(config),
    onProblem: (message) => {
      const now = Date.now();
      if (now - last < PROBLEM_LOG_INTERVAL_MS) {
        unreported++;
        return;
      }
      logger.warn({ since: unreported }, `prediction log (librdkafka): ${message}`);
      last = now;
      unreported = 0;
    },
  });
  return {
    publishPredictions: (topic, records) => producer.publish(topic, records),
    close: () => producer.abandon(),
  };
}

/**
 * The producing thread's young generation (V8's default here: 48 MB, semi-spaces of 16 MB).
 * The thread holds ~17 MB and allocates ~14 KB per record produced. After a mark-compact V8
 * lets its old generation grow by less than the default young generation holds, and then
 * starts incremental marking ahead of each scavenge: at 1,000 req/s the thread ran a full
 * mark-compact every ~0.6 s and no scavenge, and V8's helper threads spent 75-90 µs of CPU
 * per record, mostly marking. With 12 MB (16 and 24 MB still marked) it runs scavenges only,
 * and the helpers 25-30 µs (docs/inference.md, Measured).
 */
const YOUNG_GENERATION_MB = 12;

/**
 * Publishes prediction-log records to Kafka with kafkajs from a worker thread (see
 * log-publisher-worker.ts). The records cross encoded (the event loop encodes each as it is
 * logged, for either producer); their values, Buffers, arrive there as Uint8Arrays.
 */
export class WorkerPublisher implements PredictionPublisher {
  private readonly pool: Piscina;
  private sending = 0;

  constructor(options: KafkaEventLogOptions) {
    this.pool = new Piscina({
      filename: new URL('./log-publisher-worker-entry.mjs', import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      workerData: options,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
  }

  async publishPredictions(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.sending++;
    try {
      await this.pool.run({ topic, records } satisfies PublishTask);
    } finally {
      this.sending--;
    }
  }

  /**
   * Disconnects the producer, then stops the thread. A batch still in flight (kafkajs retrying
   * while Kafka is unreachable) is abandoned: the thread is stopped without waiting for it.
   */
  async close(): Promise<void> {
    if (this.sending === 0) await this.pool.run({ close: true } satisfies PublishTask).catch(() => {});
    await this.pool.destroy();
  }
}
