/** The contract every RoutingStore keeps: run on memory (unit) and on Redis (integration). */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry, Routing, RoutingStore } from '../src/registry/routing.js';

const routing = (model: string, champion: string, revision: number): Routing => ({
  model,
  champion,
  previous: [],
  revision,
  updated_at: new Date(1_700_000_000_000 + revision).toISOString(),
  updated_by: 'ops',
  reason: `revision ${revision}`,
});
const entry = (r: Routing, from: string | null): AuditEntry => ({
  at: r.updated_at,
  by: r.updated_by,
  action: from === null ? 'init' : 'promote',
  reason: r.reason,
  from,
  to: r.champion,
  revision: r.revision,
});

export function routingStoreContract(name: string, create: () => Promise<RoutingStore>): void {
  describe(`RoutingStore contract: ${name}`, () => {
    let store: RoutingStore;
    afterEach(async () => store?.close());

    it('has no routing for an unknown model', async () => {
      store = await create();
      expect(await store.get('nothing-here')).toBeNull();
      expect(await store.audit('nothing-here', 10)).toEqual([]);
    });

    it('stores a first routing only against revision 0, then each change against the current revision', async () => {
      store = await create();
      const first = routing('m', '1', 1);
      expect(await store.update(first, 0, entry(first, null))).toEqual({ ok: true, routing: first });
      expect(await store.get('m')).toEqual(first);
      const second = routing('m', '2', 2);
      // A writer that read nothing (or an old revision) is refused and told the current one.
      expect(await store.update(second, 0, entry(second, '1'))).toEqual({ ok: false, current: first });
      expect(await store.update(second, 1, entry(second, '1'))).toEqual({ ok: true, routing: second });
      expect(await store.get('m')).toEqual(second);
    });

    it('keeps an audit entry per accepted change, newest first, and none for a refused one', async () => {
      store = await create();
      const first = routing('a', '1', 1);
      const second = routing('a', '2', 2);
      await store.update(first, 0, entry(first, null));
      await store.update(second, 1, entry(second, '1'));
      await store.update(routing('a', '3', 3), 1, entry(routing('a', '3', 3), '1'));
      expect(await store.audit('a', 10)).toEqual([entry(second, '1'), entry(first, null)]);
      expect(await store.audit('a', 1)).toEqual([entry(second, '1')]);
    });

    it('keeps models apart', async () => {
      store = await create();
      const a = routing('x', '1', 1);
      const b = routing('y', '7', 1);
      await store.update(a, 0, entry(a, null));
      await store.update(b, 0, entry(b, null));
      expect((await store.get('x'))?.champion).toBe('1');
      expect((await store.get('y'))?.champion).toBe('7');
    });
  });
}
