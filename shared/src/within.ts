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
