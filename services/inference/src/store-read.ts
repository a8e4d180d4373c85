/** Waits with a deadline: a read of the online store (what the prediction and feature routes wait for), a publish. */
import type { EntityKey, OnlineStore } from '@tributary/shared';

/** `work`, failing with "no answer within <ms> ms" when it takes longer (the work itself goes on). */
export async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `store.read(keys)`, failing with "no answer within <ms> ms" when the store takes longer. */
export function readWithin(store: OnlineStore, keys: EntityKey[], ms: number): ReturnType<OnlineStore['read']> {
  return within(store.read(keys), ms);
}
