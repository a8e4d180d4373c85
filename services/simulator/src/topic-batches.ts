/**
 * Publishes the simulator's records to one topic in batches: the records added within
 * `lingerMs` of the first one waiting (Kafka's producer `linger.ms`; 0: within one event-loop
 * turn) leave together, one publish at a time; those added while a publish is on its way (a
 * broker that is down holds one for ~30 s of retries) leave together after it. The promise of
 * each record settles with its batch, or when the batches are given up (`abandon`).
 */
import type { EventLog, OutgoingRecord } from '@tributary/shared';

interface Queued {
  record: OutgoingRecord;
  settle(error?: unknown): void;
}

/** Records in one publish at most (a 300-byte transaction: ~300 kB, below the brokers' 1 MB request). */
const MAX_BATCH = 1000;

export interface TopicBatches {
  (record: OutgoingRecord): Promise<void>;
  /** Resolves once every record added so far has left (or failed to). */
  flushed(): Promise<void>;
  /**
   * Fails every record not yet published with `error` (those waiting, and those of the publish
   * under way, which is not waited for), and every record added from then on; returns how
   * many records it failed.
   */
  abandon(error: Error): number;
}

export function topicBatches(eventLog: EventLog, topic: string, lingerMs = 0): TopicBatches {
  let queue: Queued[] = [];
  /** The publishes under way (and the linger before them), or null when none is. */
  let draining: Promise<void> | null = null;
  /** The records of the publish under way. */
  let publishing: Queued[] = [];
  let abandoned: Error | null = null;

  const drain = async () => {
    while (queue.length > 0) {
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(MAX_BATCH);
      publishing = batch;
      const error = await eventLog
        .publish(
          topic,
          batch.map((queued) => queued.record),
        )
        .then(
          () => undefined,
          (failure: unknown) => failure ?? new Error('publish failed'),
        );
      publishing = [];
      for (const queued of batch) queued.settle(error);
    }
    // Here, not once the promise settles: a record added in between would wait for no drain.
    draining = null;
  };

  const publish = (record: OutgoingRecord) =>
    new Promise<void>((resolve, reject) => {
      if (abandoned) return reject(abandoned);
      queue.push({ record, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      draining ??= new Promise<void>((resolve) => (lingerMs > 0 ? setTimeout(resolve, lingerMs) : setImmediate(resolve))).then(drain);
    });
  return Object.assign(publish, {
    async flushed() {
      while (draining) await draining;
    },
    abandon(error: Error) {
      abandoned = error;
      const failed = [...publishing, ...queue];
      publishing = [];
      queue = [];
      // A promise settles once: the publish under way settling later changes nothing.
      for (const queued of failed) queued.settle(error);
      draining = null;
      return failed.length;
    },
  });
}
