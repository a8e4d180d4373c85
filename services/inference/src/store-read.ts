/** The online store read with a deadline (what the prediction and feature routes wait for). */
import { within, type EntityKey, type OnlineStore } from '@tributary/shared';

/** `store.read(keys)`, failing with "no answer within <ms> ms" when the store takes longer. */
export function readWithin(store: OnlineStore, keys: EntityKey[], ms: number): ReturnType<OnlineStore['read']> {
  return within(store.read(keys), ms);
}
