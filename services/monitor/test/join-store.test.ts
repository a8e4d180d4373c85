import { describe, expect, it } from 'vitest';
import { MemoryJoinStore } from '../src/join-store.js';
import { joinStoreContract, REPLAY_HORIZON } from './join-store.contract.js';

joinStoreContract('memory', async () => new MemoryJoinStore(60_000, REPLAY_HORIZON));

describe('MemoryJoinStore', () => {
  it('forgets a request once its keep time is past, joined or not, as Redis expires its hash', async () => {
    const keepMs = 60_000;
    const store = new MemoryJoinStore(keepMs, REPLAY_HORIZON);
    const deadline = Date.now() + 1_000;
    const offers = Array.from({ length: 100 }, (_, i) => [
      { side: 'prediction' as const, requestId: `r${i}`, unit: 'champion:m:1', record: `p${i}`, value: 'p', deadline },
      ...(i % 2 === 0 ? [{ side: 'label' as const, requestId: `r${i}`, record: `l${i}`, value: 'l', deadline: deadline + i }] : []),
    ]).flat();
    await store.offer(offers);
    expect(store.size).toBe(100);
    // Past every deadline, within the keep time: the sides are counted, the joined requests kept for replays.
    expect(await store.sweep(deadline + 200, 10_000)).toMatchObject({ predictions: 50, labels: 0 });
    expect(store.size).toBe(50);
    // r0's prediction, joined by its label and past its deadline: its record too is a duplicate now.
    expect(await store.offer([offers[0]!, { ...offers[0]!, record: 'another' }])).toEqual([{ kind: 'duplicate' }, { kind: 'duplicate' }]);
    // Past the keep time of the latest side: nothing is left.
    expect(await store.sweep(deadline + 97 + keepMs, 10_000)).toMatchObject({ predictions: 0, labels: 0 });
    expect(store.size).toBe(1); // r98, whose label's deadline is the latest: deadline + 98
    await store.sweep(deadline + 98 + keepMs, 10_000);
    expect(store.size).toBe(0);
  });
});
