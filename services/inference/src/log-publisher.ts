/** Publishes records to Kafka from a worker thread (see log-publisher-worker.ts). */
import { Piscina } from 'piscina';
import type { EventLog, KafkaEventLogOptions, OutgoingRecord } from '@tributary/shared';
import type { PublishTask } from './log-publisher-worker.js';

export class WorkerPublisher implements Pick<EventLog, 'publish'> {
  private readonly pool: Piscina;

  constructor(options: KafkaEventLogOptions) {
    this.pool = new Piscina({
      filename: new URL('./log-publisher-worker-entry.mjs', import.meta.url).href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      workerData: options,
    });
  }

  async publish(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.pool.run({ topic, records } satisfies PublishTask);
  }

  /** Disconnects the producer, then stops the thread (publish what must be delivered first). */
  async close(): Promise<void> {
    await this.pool.run({ close: true } satisfies PublishTask).catch(() => {});
    await this.pool.destroy();
  }
}
