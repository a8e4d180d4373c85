/**
 * How a consumer stops without waiting on a store that is down: the batches in flight are
 * given up (their offsets are not committed, so whoever consumes their partitions next
 * consumes them again), and what the stop itself waits for is bounded.
 */
export class Stopping extends Error {
  constructor() {
    super('the consumer is stopping: the batch is given up and consumed again from its commit');
    this.name = 'Stopping';
  }
}

export interface StopSignal {
  readonly stopped: boolean;
  /** Fails every `until` pending now or later. */
  stop(): void;
  /** Settles as `work` does, or fails with `Stopping` once the consumer stops (`work` then goes on unheard). */
  until<T>(work: Promise<T>): Promise<T>;
}

export function stopSignal(): StopSignal {
  /**
   * The pending `until`s' rejections. Not `Promise.race([work, stopping])` with one promise for
   * the stop: every race adds a reaction to that promise, which stays pending while the consumer
   * runs, so each batch's race, and the batch it settled with, stayed in memory (a feature
   * pipeline grew by ~8 KB per event in the soak, 2026-12-02).
   */
  const pending = new Set<(error: Stopping) => void>();
  let stopped = false;
  return {
    get stopped() {
      return stopped;
    },
    stop() {
      stopped = true;
      const error = new Stopping();
      for (const reject of pending) reject(error);
      pending.clear();
    },
    until<T>(work: Promise<T>): Promise<T> {
      if (stopped) {
        // Whatever `work` does now goes unheard, its failure included.
        work.catch(() => undefined);
        return Promise.reject(new Stopping());
      }
      return new Promise<T>((resolve, reject) => {
        pending.add(reject);
        work.then(
          (value) => {
            pending.delete(reject);
            resolve(value);
          },
          (error: unknown) => {
            pending.delete(reject);
            reject(error as Error);
          },
        );
      });
    },
  };
}
