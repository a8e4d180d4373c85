/**
 * How a consumer stops without waiting on a store that is down: the batches in flight are
 * given up (their offsets are not committed, so whoever consumes their partitions next
 * consumes them again), and what the stop itself waits for is bounded.
 */
import { giveUpSignal } from '@tributary/shared';

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

/** A `giveUpSignal` whose reason is `Stopping`. */
export function stopSignal(): StopSignal {
  const signal = giveUpSignal();
  return {
    get stopped() {
      return signal.reason !== undefined;
    },
    stop: () => signal.giveUp(new Stopping()),
    until: (work) => signal.until(work),
  };
}
