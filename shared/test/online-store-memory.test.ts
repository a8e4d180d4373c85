/** The embedded online store removes expired values that nobody reads again. */
import { describe, expect, it } from 'vitest';
import { MEMORY_STORE_SWEEP_INTERVAL_MS, MemoryOnlineStore } from '../src/online-store/memory.js';

describe('the embedded online store', () => {
  it('removes expired values that are never read again, with a later write', async () => {
    let now = Date.UTC(2026, 11, 1);
    const store = new MemoryOnlineStore(() => now);
    const key = (id: string) => ({ group: 'g', entity: 'user_id', id });
    const write = (id: string, ttlMs: number) => ({ key: key(id), partition: 0, offset: '1', set: { s0: 'x' }, remove: [], ttlMs });
    await store.write([write('gone', 1_000), write('kept', 10 * MEMORY_STORE_SWEEP_INTERVAL_MS)]);
    await store.writeEventIds({ log: 'old', add: { name: 'c', ids: [['e1', now]] }, remove: [], ttlMs: 1_000 });
    await store.remember([{ key: 'old', value: 'v', ttlMs: 1_000 }]);
    await store.meet([{ pair: 'p', side: 'lbl', other: 'txn', value: 'v', ttlMs: 1_000 }]);
    expect(store.held()).toEqual({ entities: 2, eventIdLogs: 1, remembered: 1, pairSides: 1 });
    now += MEMORY_STORE_SWEEP_INTERVAL_MS;
    await store.write([write('new', 1_000)]);
    expect(store.held()).toEqual({ entities: 2, eventIdLogs: 0, remembered: 0, pairSides: 0 });
    expect((await store.read([key('kept'), key('new'), key('gone')])).map((fields) => fields?.s0 ?? null)).toEqual(['x', 'x', null]);
  });
});
