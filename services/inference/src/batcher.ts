/**
 * Dynamic batching (Triton's `max_queue_delay`): rows to score wait in a queue and are sent
 * to the model runner together. A batch leaves as soon as a runner is free (after the
 * current event-loop turn, so that requests parsed together are scored together) or after
 * `maxDelayMs` when set; while every runner is busy the queue grows, so the batch size
 * follows the load. The queue is bounded: beyond `maxQueuedRows` scoring is refused
 * (the service answers 503 and the client retries). A run that fails, or outlasts
 * `runTimeoutMs`, fails the batch's requests with a retriable MODEL_UNAVAILABLE naming the
 * model. An overdue run is not stopped (the runner lets it end on its own): it no longer counts
 * against `concurrency`, and its scores, if they come, are dropped.
 */
import { TributaryError } from '@tributary/shared';

export interface BatchRunner {
  /** Scores `rows` input vectors laid out one after another; one score per row. */
  run(vectors: Float32Array, rows: number): Promise<Float32Array>;
}

export interface MicroBatcherOptions {
  /** Values per row. */
  width: number;
  maxBatchRows: number;
  /** Extra wait for more rows before a batch leaves; 0: only the current event-loop turn. */
  maxDelayMs: number;
  /** Batches run at once (one per worker thread), overdue runs aside. */
  concurrency: number;
  maxQueuedRows: number;
  /** Told the size of every batch sent. */
  onBatch?(rows: number): void;
  /** What scores, for error messages (default "the model"). */
  model?: string;
  /** Longest run of a batch, ms; 0 or unset: no deadline. */
  runTimeoutMs?: number;
  /** Told of every batch whose run failed (`crash`) or outlasted `runTimeoutMs` (`timeout`). */
  onRunFailure?(reason: RunFailure): void;
}

/** Why a batch's run failed: it threw or its worker thread died (`crash`), or it outlasted `runTimeoutMs` (`timeout`). */
export const RUN_FAILURES = ['crash', 'timeout'] as const;

export type RunFailure = (typeof RUN_FAILURES)[number];

interface Pending {
  vectors: Float32Array;
  rows: number;
  resolve(scores: Float32Array): void;
  reject(error: unknown): void;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private queuedRows = 0;
  private inFlight = 0;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly runner: BatchRunner,
    private readonly options: MicroBatcherOptions,
  ) {}

  /** Rows waiting for a runner. */
  get queued(): number {
    return this.queuedRows;
  }

  score(vectors: Float32Array, rows: number): Promise<Float32Array> {
    if (vectors.length !== rows * this.options.width) {
      return Promise.reject(new Error(`expected ${rows} x ${this.options.width} values, got ${vectors.length}`));
    }
    if (this.queuedRows + rows > this.options.maxQueuedRows) {
      return Promise.reject(new TributaryError('OVERLOADED', `the model queue is full (${this.queuedRows} rows waiting); retry shortly`));
    }
    const { maxBatchRows, width } = this.options;
    if (rows <= maxBatchRows) return this.enqueue(vectors, rows);
    // More rows than one run takes: scored as several batches, the scores put back in order.
    const parts: Promise<Float32Array>[] = [];
    for (let from = 0; from < rows; from += maxBatchRows) {
      const count = Math.min(maxBatchRows, rows - from);
      parts.push(this.enqueue(vectors.subarray(from * width, (from + count) * width), count));
    }
    return Promise.all(parts).then((scored) => {
      const scores = new Float32Array(rows);
      scored.forEach((part, i) => scores.set(part, i * maxBatchRows));
      return scores;
    });
  }

  private enqueue(vectors: Float32Array, rows: number): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.queue.push({ vectors, rows, resolve, reject });
      this.queuedRows += rows;
      if (this.queuedRows >= this.options.maxBatchRows) this.dispatch();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.concurrency || this.queue.length === 0) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.dispatch();
    };
    if (this.options.maxDelayMs > 0) setTimeout(go, this.options.maxDelayMs);
    else setImmediate(go);
  }

  private dispatch(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const batch: Pending[] = [];
      let rows = 0;
      while (this.queue.length > 0 && (batch.length === 0 || rows + this.queue[0]!.rows <= this.options.maxBatchRows)) {
        const next = this.queue.shift()!;
        batch.push(next);
        rows += next.rows;
      }
      this.queuedRows -= rows;
      this.run(batch, rows);
    }
  }

  private run(batch: Pending[], rows: number): void {
    const width = this.options.width;
    let vectors: Float32Array;
    if (batch.length === 1) {
      vectors = batch[0]!.vectors;
    } else {
      vectors = new Float32Array(rows * width);
      let at = 0;
      for (const pending of batch) {
        vectors.set(pending.vectors, at);
        at += pending.vectors.length;
      }
    }
    this.inFlight++;
    this.options.onBatch?.(rows);
    let settled = false;
    const fail = (reason: RunFailure, error: TributaryError) => {
      if (settled) return;
      settled = true;
      this.options.onRunFailure?.(reason);
      for (const pending of batch) pending.reject(error);
    };
    const { model = 'the model', runTimeoutMs } = this.options;
    const deadline = runTimeoutMs
      ? setTimeout(() => {
          fail(
            'timeout',
            new TributaryError(
              'MODEL_UNAVAILABLE',
              `${model} did not score a batch of ${rows} rows within ${runTimeoutMs} ms; retry shortly`,
            ),
          );
          release();
        }, runTimeoutMs)
      : undefined;
    // The batch's place among the runs at once, given back when the run ends or its deadline passes.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(deadline);
      this.inFlight--;
      if (this.queue.length > 0) this.schedule();
      else if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    };
    this.runner
      .run(vectors, rows)
      .then(
        (scores) => {
          if (settled) return;
          settled = true;
          let at = 0;
          for (const pending of batch) {
            pending.resolve(scores.subarray(at, at + pending.rows));
            at += pending.rows;
          }
        },
        (error: unknown) => {
          const reason = error instanceof Error ? error.message : String(error);
          fail('crash', new TributaryError('MODEL_UNAVAILABLE', `${model} failed to score (${reason}); retry shortly`, { cause: error }));
        },
      )
      .finally(release);
  }

  /** Resolves when nothing is queued or running (overdue runs aside). */
  async drained(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}
