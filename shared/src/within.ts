/** Waits with a deadline: a read of a store, a publish, a last flush. */

/** What `within` fails with when the work took longer than its deadline. */
export class TimedOut extends Error {
  override readonly name = 'TimedOut';
}

/** `work`, failing with TimedOut ("no answer within <ms> ms") when it takes longer (the work itself goes on). */
export async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Work waited for until the waiter gives up on all of it at once (a consumer that stops, a
 * simulator past its stop deadline): `until(work)` settles as `work` does, or fails with the
 * reason given to `giveUp` (then and for every later `until`; `work` goes on unheard, and
 * `cancel`, if given, is told, to abort it).
 *
 * Not `Promise.race([work, givenUp])` with one promise for the give-up: every race adds a
 * reaction to that promise, which stays pending while the waiter runs, so each race, and what
 * it settled with, stayed in memory (a feature pipeline grew by ~8 KB per event in a soak, and
 * `npm start`'s simulator by ~1.8 KB per transaction, 2026-12-02).
 */
export interface GiveUpSignal {
  /** The reason given to `giveUp`, once it is called. */
  readonly reason: Error | undefined;
  giveUp(reason: Error): void;
  until<T>(work: Promise<T>, cancel?: (reason: Error) => void): Promise<T>;
}

export function giveUpSignal(): GiveUpSignal {
  /** The pending `until`s' rejections. */
  const pending = new Set<(reason: Error) => void>();
  let givenUp: Error | undefined;
  return {
    get reason() {
      return givenUp;
    },
    giveUp(reason) {
      if (givenUp !== undefined) return;
      givenUp = reason;
      for (const fail of pending) fail(reason);
      pending.clear();
    },
    until<T>(work: Promise<T>, cancel?: (reason: Error) => void): Promise<T> {
      if (givenUp !== undefined) {
        // Whatever `work` does now goes unheard, its failure included.
        work.catch(() => undefined);
        cancel?.(givenUp);
        return Promise.reject(givenUp);
      }
      return new Promise<T>((resolve, reject) => {
        const fail = (reason: Error) => {
          work.catch(() => undefined);
          cancel?.(reason);
          reject(reason);
        };
        pending.add(fail);
        work.then(
          (value) => {
            pending.delete(fail);
            resolve(value);
          },
          (error: unknown) => {
            pending.delete(fail);
            reject(error as Error);
          },
        );
      });
    },
  };
}
