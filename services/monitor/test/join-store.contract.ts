/** The contract every JoinStore keeps: run on memory (unit) and on Redis (integration). */
import { afterEach, describe, expect, it } from 'vitest';
import { createRandom } from '@tributary/shared';
import type { JoinStore, Offer, OfferResult } from '../src/join-store.js';

const HOUR = 3_600_000;
/** The replay horizon the stores under contract are made with: shorter than the deadlines below (an hour). */
export const REPLAY_HORIZON = 10 * 60_000;
/** A new record's identity: each side made by the helpers below is its own record (offer the same object to offer it again). */
let records = 0;
const newRecord = () => `${++records}`;
const prediction = (requestId: string, deadline = Date.now() + HOUR, unit = 'champion:m:1'): Offer => ({
  side: 'prediction',
  requestId,
  unit,
  record: newRecord(),
  value: unit === 'champion:m:1' ? `p:${requestId}` : `p:${requestId}:${unit}`,
  deadline,
});
const shadow = (requestId: string, deadline = Date.now() + HOUR): Offer => prediction(requestId, deadline, 'shadow:m:2');
const label = (requestId: string, deadline = Date.now() + HOUR): Offer => ({
  side: 'label',
  requestId,
  record: newRecord(),
  value: `l:${requestId}`,
  deadline,
});
/** A label that names its value (as the monitor's do): a later one of the request that differs is a correction. */
const labelOf = (requestId: string, value: '0' | '1', deadline = Date.now() + HOUR): Offer => ({
  side: 'label',
  requestId,
  record: newRecord(),
  value: `l:${requestId}:${value}`,
  label: value,
  deadline,
});
const joined = (...others: string[]): OfferResult => ({ kind: 'joined', others });
/** The answer to a record offered again whose first offer joined `others`. */
const again = (...others: string[]): OfferResult => ({ kind: 'joined', others, again: true });
const WAITING: OfferResult = { kind: 'waiting' };
const DUPLICATE: OfferResult = { kind: 'duplicate' };
const CORRECTED: OfferResult = { kind: 'corrected' };

/** The prediction units of the random streams: an answering version and two shadows. */
const UNITS = ['champion:m:1', 'shadow:m:2', 'shadow:m:3'];

/**
 * A random stream of offers on a few hundred requests, so that requests see both orders
 * (label first, predictions first), one to three prediction units each, duplicates of either
 * side before and after their join, records offered again (one offer in ten repeats an
 * earlier one), and offers of one request far apart in the stream. Each value names its offer.
 */
export function randomOffers(seed: number, count: number, requests: number): Offer[] {
  const random = createRandom(seed);
  const deadline = Date.now() + HOUR;
  const offers: Offer[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0 && random.next() < 0.1) {
      offers.push(offers[random.int(i)]!);
      continue;
    }
    const requestId = `q${random.int(requests)}`;
    const record = `s${i}`;
    if (random.next() < 0.4) {
      offers.push({ side: 'label', requestId, record, value: `l:${requestId}:${i}`, label: i % 3 === 0 ? '0' : '1', deadline });
      continue;
    }
    const unit = UNITS[random.next() < 0.6 ? 0 : 1 + random.int(2)]!;
    offers.push({ side: 'prediction', requestId, unit, record, value: `p:${requestId}:${unit}:${i}`, deadline });
  }
  return offers;
}

/**
 * Each request's state, as offers applied after the stream reveal it: every offer of the stream
 * again (what its record is answered now), then a new record of every side.
 */
export function probes(offers: Offer[]): Offer[] {
  const deadline = Date.now() + HOUR;
  return [
    ...offers,
    ...[...new Set(offers.map((o) => o.requestId))].flatMap((requestId): Offer[] => [
      ...UNITS.map((unit): Offer => ({
        side: 'prediction',
        requestId,
        unit,
        record: `probe-p:${requestId}:${unit}`,
        value: `probe-p:${requestId}:${unit}`,
        deadline,
      })),
      { side: 'label', requestId, record: `probe-l:${requestId}`, value: `probe-l:${requestId}`, deadline },
    ]),
  ];
}

export function joinStoreContract(name: string, create: () => Promise<JoinStore>): void {
  describe(`JoinStore contract: ${name}`, () => {
    let store: JoinStore;
    afterEach(async () => store?.close());

    it('joins a label to the prediction waiting for it, and a prediction to the label that came first', async () => {
      store = await create();
      expect(await store.offer([prediction('a')])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([label('a')])).toEqual([joined('p:a')]);
      expect(await store.offer([label('b')])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([prediction('b')])).toEqual([joined('l:b')]);
    });

    it('counts a side offered long past its deadline (two keep times and more) as expired at the next sweep', async () => {
      store = await create();
      const late = Date.now() - 10 * HOUR;
      expect(await store.offer([prediction('old', late), label('old-label', late)])).toEqual([{ kind: 'waiting' }, { kind: 'waiting' }]);
      // Past an expiry of a millisecond, far within the keep time.
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await store.sweep(Date.now(), 100)).toEqual({ predictions: 1, labels: 1, taken: 2 });
    });

    it('takes deadlines with a fraction of a millisecond (a predicted_at is any number)', async () => {
      store = await create();
      const deadline = Date.now() + HOUR + 0.5;
      expect(await store.offer([prediction('frac', deadline)])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([label('frac', deadline + 0.25)])).toEqual([joined('p:frac')]);
    });

    it('applies the offers of one call in order', async () => {
      store = await create();
      expect(await store.offer([prediction('c'), label('d'), label('c'), prediction('d')])).toEqual([
        { kind: 'waiting' },
        { kind: 'waiting' },
        joined('p:c'),
        joined('l:d'),
      ]);
    });

    it('joins each request once: other records of either side, before or after the join, are duplicates', async () => {
      store = await create();
      expect(await store.offer([prediction('e'), prediction('e')])).toEqual([{ kind: 'waiting' }, { kind: 'duplicate' }]);
      expect(await store.offer([label('e'), label('e'), prediction('e')])).toEqual([
        joined('p:e'),
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
      expect(await store.sweep(now, 100)).toMatchObject({ predictions: 1, labels: 1 });
      expect(await store.sweep(now, 100)).toMatchObject({ predictions: 0, labels: 0 });
      // The expired prediction is gone: its label now waits instead of joining.
      expect(await store.offer([label('f')])).toEqual([{ kind: 'waiting' }]);
      // The one not yet due still joins.
      expect(await store.offer([label('h')])).toEqual([joined('p:h')]);
      expect(await store.sweep(now + 2 * HOUR, 100)).toMatchObject({ predictions: 0, labels: 1 });
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
        // Every outcome occurs: joins on a label and on a prediction (its label came first), each
        // answered again to its record offered again, duplicates, corrections.
        const kinds = batched.map((r, i) => (r.kind === 'joined' ? `joined-${offers[i]!.side}${r.again ? '-again' : ''}` : r.kind));
        expect(new Set(kinds)).toEqual(
          new Set([
            'waiting',
            'duplicate',
            'corrected',
            'joined-label',
            'joined-prediction',
            'joined-label-again',
            'joined-prediction-again',
          ]),
        );
        // Labels that joined several predictions at once occur too.
        expect(batched.some((r) => r.kind === 'joined' && r.others.length > 1)).toBe(true);
        expect(await store.offer(probes(offers))).toEqual(await other.offer(probes(offers)));
        expect(await store.sweep(Date.now() + 2 * HOUR, 10_000)).toEqual(await other.sweep(Date.now() + 2 * HOUR, 10_000));
      } finally {
        await other.close();
      }
    });

    it('joins a label to every prediction of its request: label first, then the champion and a shadow', async () => {
      store = await create();
      expect(await store.offer([label('m1')])).toEqual([{ kind: 'waiting' }]);
      expect(await store.offer([prediction('m1'), shadow('m1')])).toEqual([joined('l:m1'), joined('l:m1')]);
      // Other records of any side are duplicates; the label still waits for units it has not seen.
      expect(await store.offer([prediction('m1'), shadow('m1'), label('m1')])).toEqual([
        { kind: 'duplicate' },
        { kind: 'duplicate' },
        { kind: 'duplicate' },
      ]);
      expect(await store.offer([prediction('m1', undefined, 'shadow:m:3')])).toEqual([joined('l:m1')]);
    });

    it('joins a label to every prediction that waited for it, in the order of their units, and a later shadow too', async () => {
      store = await create();
      expect(await store.offer([shadow('m2'), prediction('m2')])).toEqual([{ kind: 'waiting' }, { kind: 'waiting' }]);
      expect(await store.offer([label('m2')])).toEqual([joined('p:m2', 'p:m2:shadow:m:2')]);
      expect(await store.offer([label('m2'), shadow('m2'), prediction('m2')])).toEqual([
        { kind: 'duplicate' },
        { kind: 'duplicate' },
        { kind: 'duplicate' },
      ]);
      expect(await store.offer([prediction('m2', undefined, 'shadow:m:3')])).toEqual([joined('l:m2')]);
      // A unit offered twice before any label: the second is a duplicate, the label joins it once.
      expect(await store.offer([shadow('m3'), shadow('m3'), label('m3'), label('m3')])).toEqual([
        { kind: 'waiting' },
        { kind: 'duplicate' },
        joined('p:m3:shadow:m:2'),
        { kind: 'duplicate' },
      ]);
    });

    it('expires a prediction unit that got no label while another of its request joined, and never counts a label that joined', async () => {
      store = await create();
      const now = Date.now();
      // n: the champion joined its label; the shadow, logged after the label's deadline passed
      // and the label was swept, waits and expires.
      await store.offer([prediction('n', now - 20), label('n', now - 10)]);
      expect(await store.sweep(now, 100)).toMatchObject({ predictions: 0, labels: 0 });
      expect(await store.offer([shadow('n', now - 5)])).toEqual([{ kind: 'waiting' }]);
      // The label was joined: a replay of it is still a duplicate after its deadline.
      expect(await store.offer([label('n')])).toEqual([{ kind: 'duplicate' }]);
      expect(await store.sweep(now, 100)).toMatchObject({ predictions: 1, labels: 0 });
      expect(await store.offer([prediction('n'), shadow('n')])).toEqual([{ kind: 'duplicate' }, { kind: 'waiting' }]);
      // o: a shadow expired before the label came; the label joins the champion only, and is not unmatched.
      await store.offer([shadow('o', now - 1), prediction('o', now + HOUR)]);
      expect(await store.sweep(now, 100)).toMatchObject({ predictions: 1, labels: 0 });
      expect(await store.offer([label('o', now + HOUR)])).toEqual([joined('p:o')]);
      expect(await store.sweep(now + 2 * HOUR, 100)).toMatchObject({ predictions: 1, labels: 0 });
    });

    it('answers a record offered again as its first offer was answered: waiting, or joined with the same others', async () => {
      store = await create();
      // Prediction first: it waits, the label joins it.
      const [pa, la] = [prediction('a'), label('a')];
      expect(await store.offer([pa])).toEqual([WAITING]);
      expect(await store.offer([pa])).toEqual([WAITING]);
      expect(await store.offer([la])).toEqual([joined('p:a')]);
      // Both offered again (the answers lost): the label's join again, the prediction waited.
      expect(await store.offer([la, pa])).toEqual([again('p:a'), WAITING]);
      // Label first: it waits, the champion and the shadow join it.
      const [lb, pb, sb] = [label('b'), prediction('b'), shadow('b')];
      expect(await store.offer([lb])).toEqual([WAITING]);
      expect(await store.offer([pb, sb])).toEqual([joined('l:b'), joined('l:b')]);
      expect(await store.offer([sb, lb, pb])).toEqual([again('l:b'), WAITING, again('l:b')]);
      // A label that joined two predictions: both again, in the order of their units.
      const [sc, pc, lc] = [shadow('c'), prediction('c'), label('c')];
      expect(await store.offer([sc, pc, lc])).toEqual([WAITING, WAITING, joined('p:c', 'p:c:shadow:m:2')]);
      expect(await store.offer([lc, sc, pc])).toEqual([again('p:c', 'p:c:shadow:m:2'), WAITING, WAITING]);
      // A prediction logged after that join joins the label once; the label offered again still
      // answers only what its own offer joined.
      const third = prediction('c', undefined, 'shadow:m:3');
      expect(await store.offer([third, lc, third])).toEqual([joined('l:c'), again('p:c', 'p:c:shadow:m:2'), again('l:c')]);
      // Other records of a side already there stay duplicates.
      expect(await store.offer([prediction('a'), label('a'), shadow('b'), label('b'), prediction('c'), label('c')])).toEqual(
        Array.from({ length: 6 }, () => DUPLICATE),
      );
    });

    it('answers a record offered twice in one call as in two calls', async () => {
      store = await create();
      const [pd, ld, le] = [prediction('d'), label('d'), label('e')];
      expect(await store.offer([pd, ld, pd, ld, le, le])).toEqual([WAITING, joined('p:d'), WAITING, again('p:d'), WAITING, WAITING]);
    });

    it('keeps what answers a record again until the deadline of the sides it joined, and never counts those as expired', async () => {
      store = await create();
      const now = Date.now();
      // f: the prediction, due now, joined by a label due later. g: the label, due now, joined by a prediction due later.
      const [pf, lf] = [prediction('f', now - 10), label('f', now + HOUR)];
      const [lg, pg] = [label('g', now - 10), prediction('g', now + HOUR)];
      expect(await store.offer([pf, lf, lg, pg])).toEqual([WAITING, joined('p:f'), WAITING, joined('l:g')]);
      expect(await store.offer([lf, pg])).toEqual([again('p:f'), again('l:g')]);
      // Both joined sides are removed at their deadline, not counted.
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 0, taken: 2 });
      // What they joined is gone: offered again, each is a duplicate (its joins were answered).
      expect(await store.offer([lf, pg, pf, lg])).toEqual([DUPLICATE, DUPLICATE, DUPLICATE, DUPLICATE]);
      expect(await store.sweep(now + 2 * HOUR, 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
    });

    it('keeps a prediction a label joined for the replay horizon only: then removed uncounted, the label offered again a duplicate', async () => {
      store = await create();
      const before = Date.now();
      // a, b: predictions first, joined by their labels; b's prediction is due before the horizon.
      const [pa, la] = [prediction('a', before + HOUR), label('a', before + HOUR)];
      const [pb, lb] = [prediction('b', before + REPLAY_HORIZON / 2), label('b', before + HOUR)];
      // c: the label first, joined by the prediction.
      const [lc, pc] = [label('c', before + HOUR), prediction('c', before + HOUR)];
      expect(await store.offer([pa, pb, la, lb, lc, pc])).toEqual([WAITING, WAITING, joined('p:a'), joined('p:b'), WAITING, joined('l:c')]);
      const after = Date.now();
      // b's prediction goes at its own deadline, before the horizon.
      expect(await store.sweep(before + REPLAY_HORIZON / 2, 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
      // Within the horizon, the records offered again get their first answers.
      expect(await store.sweep(before + REPLAY_HORIZON - 1, 100)).toEqual({ predictions: 0, labels: 0, taken: 0 });
      expect(await store.offer([la, pa, lb, lc, pc])).toEqual([again('p:a'), WAITING, DUPLICATE, WAITING, again('l:c')]);
      // Past it, a's prediction is removed, not counted as expired; the labels stay.
      expect(await store.sweep(after + REPLAY_HORIZON, 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
      expect(await store.offer([la, pa, prediction('a'), label('a')])).toEqual([DUPLICATE, DUPLICATE, DUPLICATE, DUPLICATE]);
      // c's prediction is answered by the label, kept until its deadline whatever the horizon.
      expect(await store.offer([pc, lc])).toEqual([again('l:c'), WAITING]);
      // A shadow logged late still joins each label until the label's deadline.
      expect(await store.offer([shadow('a'), shadow('b')])).toEqual([joined('l:a'), joined('l:b')]);
      expect(await store.sweep(before + HOUR, 100)).toEqual({ predictions: 0, labels: 0, taken: 3 });
    });

    it('answers a second label of a request that differs from the first as corrected, the same one as a duplicate; the first stays joined', async () => {
      store = await create();
      const now = Date.now();
      // r: the label joins the prediction; then the same label again, and one that differs.
      const [pr, first] = [prediction('r'), labelOf('r', '1')];
      const correction = labelOf('r', '0');
      expect(await store.offer([pr, first, labelOf('r', '1'), correction])).toEqual([WAITING, joined('p:r'), DUPLICATE, CORRECTED]);
      // Offered again, each record gets its answer again; a shadow logged later joins the first label.
      expect(await store.offer([first, correction, shadow('r')])).toEqual([again('p:r'), CORRECTED, joined('l:r:1')]);
      // A label without a value to compare is a duplicate, as before.
      expect(await store.offer([label('r')])).toEqual([DUPLICATE]);
      // s: a correction while the first label still waits: the prediction joins the first.
      expect(await store.offer([labelOf('s', '1'), labelOf('s', '0'), prediction('s')])).toEqual([WAITING, CORRECTED, joined('l:s:1')]);
      // t: past the first label's deadline (it joined): still told apart.
      expect(await store.offer([prediction('t', now - 20), labelOf('t', '0', now - 10)])).toEqual([WAITING, joined('p:t')]);
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 0, taken: 2 });
      expect(await store.offer([labelOf('t', '1'), labelOf('t', '0')])).toEqual([CORRECTED, DUPLICATE]);
      // u: a label that joined nothing expires; a later label of the request is a first one.
      expect(await store.offer([labelOf('u', '1', now - 10)])).toEqual([WAITING]);
      expect(await store.sweep(now, 100)).toEqual({ predictions: 0, labels: 1, taken: 1 });
      expect(await store.offer([labelOf('u', '0'), prediction('u')])).toEqual([WAITING, joined('l:u:0')]);
    });

    it('sweeps at most `limit` sides per call, oldest first', async () => {
      store = await create();
      const now = Date.now();
      await store.offer([prediction('j', now - 30), prediction('k', now - 20), label('m', now - 10)]);
      expect(await store.sweep(now, 2)).toEqual({ predictions: 2, labels: 0, taken: 2 });
      expect(await store.sweep(now, 2)).toEqual({ predictions: 0, labels: 1, taken: 1 });
      expect(await store.sweep(now, 2)).toEqual({ predictions: 0, labels: 0, taken: 0 });
    });
  });
}
