/** The contract every JoinStore keeps: run on memory (unit) and on Redis (integration). */
import { afterEach, describe, expect, it } from 'vitest';
import type { JoinStore, Offer } from '../src/join-store.js';

const HOUR = 3_600_000;
const prediction = (requestId: string, deadline = Date.now() + HOUR): Offer => ({
  side: 'prediction',
  requestId,
  value: `p:${requestId}`,
  deadline,
});
const label = (requestId: string, deadline = Date.now() + HOUR): Offer => ({ side: 'label', requestId, value: `l:${requestId}`, deadline });

export function joinStoreContract(name: string, create: () => Promise<JoinStore>): void {
  describe(`JoinStore contract: ${name}`, () => {
    let store: JoinStore;
    afterEach(async () => store?.close());

    it('joins a label to the prediction waiting for it, and a prediction to the label that came first', async () => {
      store = await create();
      expect(await store.offer([prediction('a')])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([label('a')])).toEqual([{ kind: 'joined', other: 'p:a' }]);
      expect(await store.offer([label('b')])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([prediction('b')])).toEqual([{ kind: 'joined', other: 'l:b' }]);
    });

    it('applies the offers of one call in order', async () => {
      store = await create();
      expect(await store.offer([prediction('c'), label('d'), label('c'), prediction('d')])).toEqual([
        { kind: 'waiting' },
        { kind: 'waiting' },
        { kind: 'joined', other: 'p:c' },
        { kind: 'joined', other: 'l:d' },
      ]);
    });

    it('joins each request once: replays of either side, before or after the join, are duplicates', async () => {
      store = await create();
      expect(await store.offer([prediction('e'), prediction('e')])).toEqual([{ kind: 'waiting' }, { kind: 'duplicate' }]);
      expect(await store.offer([label('e'), label('e'), prediction('e')])).toEqual([
        { kind: 'joined', other: 'p:e' },
        { kind: 'duplicate' },
        { kind: 'duplicate' },
      ]);
    });

    it('sweeps the sides past their deadline once, counting expired predictions and unmatched labels', async () => {
      store = await create();
      const now = Date.now();
      await store.offer([
        prediction('f', now - 10),
        label('g', now - 5),
        prediction('h', now + HOUR),
        prediction('i', now - 1),
        label('i', now - 1),
      ]);
      expect(await store.sweep(now, 100)).toEqual({ predictions: 1, labels: 1 });
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 0 });
      // The expired prediction is gone: its label now waits instead of joining.
      expect(await store.offer([label('f')])).toEqual([{ kind: 'waiting' }]);
      // The one not yet due still joins.
      expect(await store.offer([label('h')])).toEqual([{ kind: 'joined', other: 'p:h' }]);
      expect(await store.sweep(now + 2 * HOUR, 100)).toEqual({ predictions: 0, labels: 1 });
    });

    it('sweeps at most `limit` sides per call, oldest first', async () => {
      store = await create();
      const now = Date.now();
      await store.offer([prediction('j', now - 30), prediction('k', now - 20), label('m', now - 10)]);
      expect(await store.sweep(now, 2)).toEqual({ predictions: 2, labels: 0 });
      expect(await store.sweep(now, 2)).toEqual({ predictions: 0, labels: 1 });
    });
  });
}
