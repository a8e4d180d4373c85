/** A read of the online store with a deadline: what the prediction and feature routes wait for. */
import type { EntityKey, OnlineStore } from '@tributary/shared';

/** `store.read(keys)`, failing with "no answer within <ms> ms" when the store takes longer. */
export async function readWithin(store: OnlineStore, keys: EntityKey[], ms: number): ReturnType<OnlineStore['read']> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([store.read(keys), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
