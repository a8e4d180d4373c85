import { describe, expect, it, vi } from 'vitest';
import { TributaryError } from '@tributary/shared';
import { MicroBatcher, type BatchRunner } from '../src/batcher.js';

/** A runner that records the batches it gets and answers when told to; score = sum of a row. */
function controlledRunner(width: number) {
  const batches: number[] = [];
  const waiting: (() => void)[] = [];
  const runner: BatchRunner = {
    run(vectors, rows) {
      batches.push(rows);
      return new Promise((resolve) => {
        waiting.push(() => {
          const scores = new Float32Array(rows);
          for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) scores[r]! += vectors[r * width + c]!;
          resolve(scores);
        });
      });
    },
  };
  return { runner, batches, release: () => waiting.splice(0).forEach((go) => go()) };
}

const row = (...values: number[]) => Float32Array.from(values);
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('MicroBatcher', () => {
  it('scores requests of one event-loop turn together and gives each its own scores', async () => {
    const { runner, batches, release } = controlledRunner(2);
    const batcher = new MicroBatcher(runner, { width: 2, maxBatchRows: 64, maxDelayMs: 0, concurrency: 1, maxQueuedRows: 100 });
    const a = batcher.score(row(1, 2), 1);
    const b = batcher.score(row(10, 20, 30, 40), 2);
    const c = batcher.score(row(100, 200), 1);
    await tick();
    expect(batches).toEqual([4]);
    release();
    expect([...(await a)]).toEqual([3]);
    expect([...(await b)]).toEqual([30, 70]);
    expect([...(await c)]).toEqual([300]);
  });

  it('lets the queue grow while the runner is busy, then sends it as one batch', async () => {
    const { runner, batches, release } = controlledRunner(1);
    const batcher = new MicroBatcher(runner, { width: 1, maxBatchRows: 64, maxDelayMs: 0, concurrency: 1, maxQueuedRows: 100 });
    const first = batcher.score(row(1), 1);
    await tick();
    const later = [2, 3, 4, 5].map((v) => batcher.score(row(v), 1));
    await tick();
    expect(batches).toEqual([1]);
    expect(batcher.queued).toBe(4);
    release();
    await first;
    await tick();
    await tick();
    expect(batches).toEqual([1, 4]);
    release();
    expect((await Promise.all(later)).map((s) => s[0])).toEqual([2, 3, 4, 5]);
  });

  it('never puts more than maxBatchRows rows in a batch, and runs up to `concurrency` batches at once', async () => {
    const { runner, batches, release } = controlledRunner(1);
    const batcher = new MicroBatcher(runner, { width: 1, maxBatchRows: 3, maxDelayMs: 0, concurrency: 2, maxQueuedRows: 100 });
    const all = Array.from({ length: 8 }, (_, i) => batcher.score(row(i), 1));
    await tick();
    expect(batches).toEqual([3, 3]);
    release();
    await tick();
    await tick();
    expect(batches).toEqual([3, 3, 2]);
    release();
    expect((await Promise.all(all)).map((s) => s[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('scores a request of more rows than maxBatchRows as several batches, its scores in order', async () => {
    const { runner, batches, release } = controlledRunner(1);
    const batcher = new MicroBatcher(runner, { width: 1, maxBatchRows: 3, maxDelayMs: 0, concurrency: 2, maxQueuedRows: 100 });
    const scored = batcher.score(row(0, 1, 2, 3, 4, 5, 6, 7), 8);
    const after = batcher.score(row(8), 1);
    await tick();
    expect(batches).toEqual([3, 3]);
    release();
    await tick();
    await tick();
    expect(batches).toEqual([3, 3, 3]);
    release();
    expect([...(await scored)]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...(await after)]).toEqual([8]);
    expect(batcher.queued).toBe(0);
  });

  it('waits up to maxDelayMs for more rows when asked to', async () => {
    // On a fake clock: a loaded machine's real timers fire late, and the second row came after the wait.
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    try {
      const { runner, batches, release } = controlledRunner(1);
      const batcher = new MicroBatcher(runner, { width: 1, maxBatchRows: 64, maxDelayMs: 30, concurrency: 1, maxQueuedRows: 100 });
      const a = batcher.score(row(1), 1);
      await tick();
      await vi.advanceTimersByTimeAsync(10);
      expect(batches).toEqual([]);
      const b = batcher.score(row(2), 1);
      await vi.advanceTimersByTimeAsync(19);
      expect(batches).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(batches).toEqual([2]);
      release();
      expect([(await a)[0], (await b)[0]]).toEqual([1, 2]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses rows beyond maxQueuedRows with a retriable OVERLOADED error', async () => {
    const { runner, release } = controlledRunner(1);
    const batcher = new MicroBatcher(runner, { width: 1, maxBatchRows: 2, maxDelayMs: 0, concurrency: 1, maxQueuedRows: 3 });
    const accepted = [batcher.score(row(1), 1), batcher.score(row(2), 1)]; // a full batch leaves at once
    const queued = [batcher.score(row(3), 1), batcher.score(row(4), 1), batcher.score(row(5), 1)];
    const refused = batcher.score(row(6), 1);
    await expect(refused).rejects.toMatchObject({ code: 'OVERLOADED', httpStatus: 503, retriable: true });
    await expect(refused).rejects.toBeInstanceOf(TributaryError);
    release();
    await Promise.all(accepted);
    await tick();
    release();
    await tick();
    await tick();
    release();
    expect((await Promise.all(queued)).map((s) => s[0])).toEqual([3, 4, 5]);
  });

  it('fails every request of a batch whose run failed with a retriable MODEL_UNAVAILABLE naming the model, and goes on with the next', async () => {
    let fail = true;
    const failures: string[] = [];
    const batcher = new MicroBatcher(
      { run: async (vectors, rows) => (fail ? Promise.reject(new Error('worker exited with code: 1')) : vectors.slice(0, rows)) },
      {
        width: 1,
        maxBatchRows: 64,
        maxDelayMs: 0,
        concurrency: 1,
        maxQueuedRows: 100,
        model: 'model m version 2',
        onRunFailure: (reason) => failures.push(reason),
      },
    );
    const failed = [batcher.score(row(1), 1), batcher.score(row(2), 1)];
    for (const f of failed) {
      await expect(f).rejects.toBeInstanceOf(TributaryError);
      await expect(f).rejects.toMatchObject({
        code: 'MODEL_UNAVAILABLE',
        httpStatus: 503,
        retriable: true,
        message: 'model m version 2 failed to score (worker exited with code: 1); retry shortly',
      });
    }
    expect(failures).toEqual(['crash']);
    fail = false;
    expect([...(await batcher.score(row(7), 1))]).toEqual([7]);
    await batcher.drained();
  });

  it('fails the requests of a batch whose run outlasts runTimeoutMs, gives its place to the next batch, and drops its late scores', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    try {
      // The first run ends only when told to: long after its deadline.
      const failures: string[] = [];
      let finishOverdue: (() => void) | undefined;
      const runner: BatchRunner = {
        run: (vectors, rows) => {
          if (finishOverdue) return Promise.resolve(vectors.slice(0, rows));
          return new Promise((resolve) => (finishOverdue = () => resolve(vectors.slice(0, rows).map((v) => v + 100))));
        },
      };
      const batcher = new MicroBatcher(runner, {
        width: 1,
        maxBatchRows: 64,
        maxDelayMs: 0,
        concurrency: 1,
        maxQueuedRows: 100,
        model: 'model m version 2',
        runTimeoutMs: 5000,
        onRunFailure: (reason) => failures.push(reason),
      });
      const waiting = [batcher.score(row(1), 1), batcher.score(row(2), 1)];
      const outcomes = Promise.allSettled(waiting);
      await tick();
      await vi.advanceTimersByTimeAsync(4999);
      expect(failures).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      for (const outcome of await outcomes) {
        expect(outcome).toMatchObject({
          status: 'rejected',
          reason: {
            code: 'MODEL_UNAVAILABLE',
            retriable: true,
            message: 'model m version 2 did not score a batch of 2 rows within 5000 ms; retry shortly',
          },
        });
      }
      expect(failures).toEqual(['timeout']);
      // The overdue run still holds no place: with concurrency 1, the next batch runs at once.
      await batcher.drained();
      expect([...(await batcher.score(row(7), 1))]).toEqual([7]);
      // Its scores, when they come, answer nobody and fail nothing.
      finishOverdue!();
      await tick();
      expect(failures).toEqual(['timeout']);
      await batcher.drained();
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects a vector whose length does not match the rows', async () => {
    const { runner } = controlledRunner(3);
    const batcher = new MicroBatcher(runner, { width: 3, maxBatchRows: 64, maxDelayMs: 0, concurrency: 1, maxQueuedRows: 100 });
    await expect(batcher.score(row(1, 2), 1)).rejects.toThrow('expected 1 x 3 values, got 2');
  });
});
