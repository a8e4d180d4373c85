/**
 * Publishes prediction-log records off the response path: records are encoded and queued, sent
 * in batches, kept (up to a bound) while the event log is unreachable and sent once it is
 * back. Records beyond the bound are counted as dropped, never silently lost.
 *
 * A record is encoded as it is appended, not when its batch leaves, to bytes: held for the
 * linger as a Buffer (its bytes outside the V8 heap), not as the ~30 objects of its fields (nor
 * as the string of its JSON, built of as many pieces), it costs a scavenge that finds it still
 * queued one small object to copy. At 9,000 records/s beside the service's own garbage, the
 * collector's pauses took 296-397 ms against 475-524 in 8 s (a throwaway probe, 3 alternating pairs).
 *
 * A batch leaves when `maxBatch` records are queued or `lingerMs` after the first of them
 * (Kafka's linger.ms). Producing costs most per batch rather than per record (kafkajs
 * measured here: ~106 µs of CPU per record in batches of 10, ~38 in batches of 25, ~26 in
 * batches of 500), so the linger sets that cost at low rates, where the thread producing would
 * otherwise wake for every few records.
 */
import { predictionRecordJson, within, type EventLog, type Logger, type OutgoingRecord, type PredictionLogRecord } from '@tributary/shared';

/** Where batches of prediction-log records go, encoded: a topic of the event log, here or in a worker thread. */
export interface PredictionPublisher {
  publishPredictions(topic: string, records: OutgoingRecord[]): Promise<void>;
}

/** A record as the `predictions` topic holds it: keyed by request id, the value JSON (`predictionRecordJson`) as UTF-8 bytes. */
export function encodePrediction(record: PredictionLogRecord): OutgoingRecord {
  return { key: record.request_id, value: Buffer.from(predictionRecordJson(record)) };
}

/** Publishes to an event log from this thread. */
export function eventLogPublisher(eventLog: Pick<EventLog, 'publish'>): PredictionPublisher {
  return { publishPredictions: (topic, records) => eventLog.publish(topic, records) };
}

export interface PredictionLogStats {
  published(count: number): void;
  dropped(count: number): void;
  buffered(count: number): void;
}

export interface PredictionLogOptions {
  publisher: PredictionPublisher;
  topic: string;
  capacity: number;
  stats: PredictionLogStats;
  logger: Logger;
  /** Records per batch at most (500). */
  maxBatch?: number;
  /** Longest wait for more records before a batch leaves (50 ms). */
  lingerMs?: number;
  /** Longest wait at `close` for the queued records to be published (10 s). */
  closeTimeoutMs?: number;
}

export const DEFAULT_LINGER_MS = 50;
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

export class PredictionLog {
  private queue: OutgoingRecord[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;
  private appendedAfterClose = false;
  /** Set by `flush`: the drain goes on until the queue is empty, whole batches or not. */
  private drainAll = false;

  constructor(private readonly options: PredictionLogOptions) {}

  append(record: PredictionLogRecord): void {
    if (this.closed) {
      // A scoring that finished after the shutdown's flush (a shadow's, scored after its answer): nothing sends it.
      if (!this.appendedAfterClose) this.options.logger.error('prediction log: records appended after shutdown are dropped');
      this.appendedAfterClose = true;
      this.options.stats.dropped(1);
      return;
    }
    if (this.queue.length >= this.options.capacity) {
      this.options.stats.dropped(1);
      return;
    }
    this.queue.push(encodePrediction(record));
    this.options.stats.buffered(this.queue.length);
    if (this.queue.length >= (this.options.maxBatch ?? 500)) void this.send();
    else this.schedule(this.options.lingerMs ?? DEFAULT_LINGER_MS);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.send();
    }, delayMs);
    this.timer.unref();
  }

  /** Sends what is queued; resolves when the queue is empty or a send failed. */
  async flush(): Promise<void> {
    this.drainAll = true;
    try {
      do await this.send();
      while (this.queue.length > 0 && this.failures === 0);
    } finally {
      this.drainAll = false;
    }
  }

  /** Starts a drain unless one runs; resolves when it is over. */
  private send(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  /**
   * Sends a batch of what is queued, then more while whole batches wait (or all of it, for
   * `flush`); what is left leaves after the linger.
   */
  private async drain(): Promise<void> {
    const maxBatch = this.options.maxBatch ?? 500;
    let sent = 0;
    while (this.queue.length > 0 && (sent === 0 || this.drainAll || this.queue.length >= maxBatch)) {
      const batch = this.queue.slice(0, maxBatch);
      try {
        await this.options.publisher.publishPredictions(this.options.topic, batch);
      } catch (error) {
        // Closed meanwhile: the batch was counted as dropped.
        if (this.closed) return;
        this.failures++;
        if (this.failures === 1 || this.failures % 50 === 0) {
          this.options.logger.warn({ err: error, queued: this.queue.length }, 'prediction log: publish failed, keeping records to retry');
        }
        this.schedule(Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6)));
        return;
      }
      if (this.closed) return;
      this.failures = 0;
      sent++;
      this.queue.splice(0, batch.length);
      this.options.stats.published(batch.length);
      this.options.stats.buffered(this.queue.length);
    }
    if (this.queue.length > 0) this.schedule(this.options.lingerMs ?? DEFAULT_LINGER_MS);
  }

  get pending(): number {
    return this.queue.length;
  }

  /**
   * Flushes what can be sent within `closeTimeoutMs`, then stops; what is still queued (a batch
   * in flight included) is logged and counted as dropped. Without the deadline a shutdown with
   * Kafka down would wait out the producer's own timeouts (30 s and more) and be killed before
   * it could count what it lost.
   */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const waitMs = this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const started = Date.now();
    await within(this.flush(), waitMs).catch(() => {});
    this.closed = true;
    if (this.queue.length > 0) {
      this.options.logger.error(
        { records: this.queue.length, waitedMs: Date.now() - started },
        'prediction log: records not delivered at shutdown',
      );
      this.options.stats.dropped(this.queue.length);
      this.queue = [];
    }
  }
}
