/**
 * Publishes prediction-log records to Kafka from a worker thread (see log-publisher-worker.ts).
 * The records cross as they are (a structured clone: ~1.5 µs per record here, against ~5 µs
 * to encode them as JSON and pass the strings); the worker encodes them.
 */
import { Piscina } from 'piscina';
import type { KafkaEventLogOptions, PredictionLogRecord } from '@tributary/shared';
import type { PublishTask } from './log-publisher-worker.js';
import type { PredictionPublisher } from './prediction-log.js';

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

export class WorkerPublisher implements PredictionPublisher {
  private readonly pool: Piscina;

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

  async publishPredictions(topic: string, records: PredictionLogRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.pool.run({ topic, records } satisfies PublishTask);
  }

  /** Disconnects the producer, then stops the thread (publish what must be delivered first). */
  async close(): Promise<void> {
    await this.pool.run({ close: true } satisfies PublishTask).catch(() => {});
    await this.pool.destroy();
  }
}
