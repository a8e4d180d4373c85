/** The contract every JoinStore keeps: run on memory (unit) and on Redis (integration). */
import { afterEach, describe, expect, it } from 'vitest';
import { createRandom } from '@tributary/shared';
import type { JoinStore, Offer, OfferResult } from '../src/join-store.js';

const HOUR = 3_600_000;
const prediction = (requestId: string, deadline = Date.now() + HOUR): Offer => ({
  side: 'prediction',
  requestId,
  value: `p:${requestId}`,
  deadline,
});
const label = (requestId: string, deadline = Date.now() + HOUR): Offer => ({ side: 'label', requestId, value: `l:${requestId}`, deadline });

/**
 * A random stream of offers on a few hundred requests, so that requests see both orders
 * (label first, prediction first), duplicates of either side before and after their join,
 * and offers of one request far apart in the stream. Each value names its offer.
 */
export function randomOffers(seed: number, count: number, requests: number): Offer[] {
  const random = createRandom(seed);
  const deadline = Date.now() + HOUR;
  return Array.from({ length: count }, (_, i) => {
    const requestId = `q${random.int(requests)}`;
    const side = random.next() < 0.6 ? 'prediction' : 'label';
    return { side, requestId, value: `${side[0]}:${requestId}:${i}`, deadline };
  });
}

/** Each request's state, as offers of both sides (applied after the stream) reveal it. */
export function probes(offers: Offer[]): Offer[] {
  const deadline = Date.now() + HOUR;
  return [...new Set(offers.map((o) => o.requestId))].flatMap((requestId) => [
    { side: 'prediction' as const, requestId, value: `probe-p:${requestId}`, deadline },
    { side: 'label' as const, requestId, value: `probe-l:${requestId}`, deadline },
  ]);
}

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

    it('answers offers given in one call as it answers them one call each, and ends in the same state', async () => {
      // More offers than one script call takes, so that a request's offers span calls.
      const offers = randomOffers(7, 1_500, 400);
      store = await create();
      const other = await create();
      try {
        const batched = await store.offer(offers);
        const single: OfferResult[] = [];
        for (const offer of offers) single.push(...(await other.offer([offer])));
        expect(batched).toEqual(single);
        // Every outcome occurs: joins on a label and on a prediction (its label came first), duplicates.
        const kinds = batched.map((r, i) => (r.kind === 'joined' ? `joined-${offers[i]!.side}` : r.kind));
        expect(new Set(kinds)).toEqual(new Set(['waiting', 'duplicate', 'joined-label', 'joined-prediction']));
        expect(await store.offer(probes(offers))).toEqual(await other.offer(probes(offers)));
        expect(await store.sweep(Date.now() + 2 * HOUR, 10_000)).toEqual(await other.sweep(Date.now() + 2 * HOUR, 10_000));
      } finally {
        await other.close();
      }
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
