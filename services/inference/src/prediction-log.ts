/**
 * Publishes prediction-log records off the response path: records are queued, sent in
 * batches, kept (up to a bound) while the event log is unreachable and sent once it is
 * back. Records beyond the bound are counted as dropped, never silently lost.
 */
import type { EventLog, Logger, PredictionLogRecord } from '@tributary/shared';

export interface PredictionLogStats {
  published(count: number): void;
  dropped(count: number): void;
  buffered(count: number): void;
}

export interface PredictionLogOptions {
  eventLog: Pick<EventLog, 'publish'>;
  topic: string;
  capacity: number;
  stats: PredictionLogStats;
  logger: Logger;
  maxBatch?: number;
  lingerMs?: number;
}

export class PredictionLog {
  private queue: PredictionLogRecord[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;

  constructor(private readonly options: PredictionLogOptions) {}

  append(record: PredictionLogRecord): void {
    if (this.queue.length >= this.options.capacity) {
      this.options.stats.dropped(1);
      return;
    }
    this.queue.push(record);
    this.options.stats.buffered(this.queue.length);
    if (this.queue.length >= (this.options.maxBatch ?? 500)) void this.flush();
    else this.schedule(this.options.lingerMs ?? 5);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Sends what is queued; resolves when the queue is empty or a send failed. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    const maxBatch = this.options.maxBatch ?? 500;
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, maxBatch);
      try {
        await this.options.eventLog.publish(
          this.options.topic,
          batch.map((r) => ({ key: r.request_id, value: JSON.stringify(r) })),
        );
      } catch (error) {
        this.failures++;
        if (this.failures === 1 || this.failures % 50 === 0) {
          this.options.logger.warn({ err: error, queued: this.queue.length }, 'prediction log: publish failed, keeping records to retry');
        }
        this.schedule(Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6)));
        return;
      }
      this.failures = 0;
      this.queue.splice(0, batch.length);
      this.options.stats.published(batch.length);
      this.options.stats.buffered(this.queue.length);
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Flushes what can be sent, then stops; what is still queued is reported as dropped. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
    this.closed = true;
    if (this.queue.length > 0) {
      this.options.logger.error({ records: this.queue.length }, 'prediction log: records not delivered at shutdown');
      this.options.stats.dropped(this.queue.length);
      this.queue = [];
    }
  }
}
