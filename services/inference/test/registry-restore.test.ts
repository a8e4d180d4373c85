/**
 * Changes made away from the serving replicas (the command line's registry, `awaitRestore`) after
 * the routing store lost the routing: they start from the routing the replicas write back, never
 * from one initialised on the highest registered version.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TributaryError } from '@tributary/shared';
import { ModelRegistry } from '../src/registry/registry.js';
import { MemoryRoutingStore, type Routing } from '../src/registry/routing.js';
import { logisticVersion, tempRegistry } from './models.js';

const MODEL = 'fraud_detector';

/** Versions 1 to 3, version 3 promoted then rolled back: version 1 serves, the highest is 3. */
async function rolledBack() {
  const root = tempRegistry();
  const routes = new MemoryRoutingStore();
  const replica = new ModelRegistry(root, routes);
  expect((await replica.ensureRouting(MODEL, 'inference')).champion).toBe('1');
  for (const version of ['2', '3']) {
    const built = logisticVersion(version, 0.002, -1.5);
    await replica.register(built.manifest, built.bytes);
  }
  await replica.promote(MODEL, '3', 'ops', 'try 3');
  const served = await replica.rollback(MODEL, 'ops', '3 misbehaves');
  expect(served).toMatchObject({ champion: '1', previous: [], revision: 3 });
  return { root, routes, served };
}

/** The store loses the routing (a key evicted), or the routing and its audit log (a Redis restarted without persistence). */
function lose(routes: MemoryRoutingStore, what: 'routing' | 'everything'): void {
  const inside = routes as unknown as { routes: Map<string, unknown>; log: Map<string, unknown> };
  inside.routes.delete(MODEL);
  if (what === 'everything') inside.log.delete(MODEL);
}

/** What a serving replica does at its next poll (ModelServing.restoreRouting): writes back the last routing it read. */
function writeBack(routes: MemoryRoutingStore, served: Routing): void {
  const restored: Routing = { ...served, revision: served.revision + 1, updated_by: 'inference', reason: 'routing lost; restored' };
  void routes.update(restored, 0, {
    at: restored.updated_at,
    by: 'inference',
    action: 'restore',
    reason: restored.reason,
    from: null,
    to: restored.champion,
    revision: restored.revision,
  });
}

describe('model registry changes made away from the replicas, after the routing store lost the routing', () => {
  it('wait for the routing the serving replicas write back and start from it, not from the highest version', async () => {
    const { root, routes, served } = await rolledBack();
    // The routing the replicas serve: the last one they read.
    let serving = served;
    const waits: string[] = [];
    // The replicas write back while the change waits (a long wait: the test does not depend on timing).
    const operator = new ModelRegistry(root, routes, undefined, {
      awaitRestore: {
        ms: 60_000,
        notify: (message) => {
          waits.push(message);
          writeBack(routes, serving);
        },
      },
    });

    lose(routes, 'everything');
    const canary = await operator.rollout(MODEL, { kind: 'canary', version: '2', percent: 10 }, [], 'ops', 'canary 2');
    expect(canary).toMatchObject({ champion: '1', policy: { kind: 'canary', version: '2', percent: 10 }, revision: 5 });
    expect(waits).toEqual([expect.stringMatching(/^no routing of fraud_detector is stored: waiting up to 60 s/)]);
    serving = canary;

    lose(routes, 'routing');
    const promoted = await operator.promote(MODEL, '2', 'ops', 'promote 2');
    // The champion before the promotion is the one served (1), so a rollback returns to it, not to 3.
    expect(promoted).toMatchObject({ champion: '2', previous: ['1'], revision: 7 });
    expect(waits[1]).toMatch(/^the routing of fraud_detector is no longer stored \(the audit log's last change: revision 5\)/);
    serving = promoted;

    lose(routes, 'routing');
    const back = await operator.rollback(MODEL, 'ops', 'back to 1');
    expect(back).toMatchObject({ champion: '1', revision: 9 });
    expect((await routes.audit(MODEL, 10)).map((e) => `${e.revision} ${e.action} ${e.to}`)).toEqual([
      '9 rollback 1',
      '8 restore 2',
      '7 promote 2',
      '6 restore 1',
      '5 rollout champion 1; canary 2 at 10%',
      '4 restore 1',
    ]);
  });

  it('are refused, changing nothing, when the audit log shows a routing that no replica writes back', async () => {
    const { root, routes } = await rolledBack();
    const operator = new ModelRegistry(root, routes, undefined, { awaitRestore: { ms: 50 } });
    lose(routes, 'routing');
    const audit = await routes.audit(MODEL, 10);
    for (const change of [
      () => operator.promote(MODEL, '2', 'ops', 'promote 2'),
      () => operator.rollout(MODEL, { kind: 'champion' }, ['2'], 'ops', 'shadow 2'),
      () => operator.rollback(MODEL, 'ops', 'back'),
    ]) {
      const refused = await change().catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(TributaryError);
      expect(refused).toMatchObject({ code: 'CONFLICT' });
      expect((refused as Error).message).toMatch(
        /^the routing of fraud_detector was lost from the routing store \(the audit log's last change: revision 3, rollback to 1 at .* by ops\) and no serving replica wrote it back within 0.05 s; .*retry once `list` shows a routing\. Nothing was changed\./,
      );
    }
    expect(await routes.get(MODEL)).toBeNull();
    expect(await routes.audit(MODEL, 10)).toEqual(audit);
  });

  it('start from the highest registered version on a first start (nothing stored, nothing in the audit log, no record)', async () => {
    const { root } = await rolledBack();
    rmSync(join(root, MODEL, 'routing.json'));
    const routes = new MemoryRoutingStore();
    const operator = new ModelRegistry(root, routes, undefined, { awaitRestore: { ms: 50 } });
    await expect(operator.rollback(MODEL, 'ops', 'back')).rejects.toThrow(/has no earlier champion to roll back to/);
    const promoted = await operator.promote(MODEL, '2', 'ops', 'first promotion');
    expect(promoted).toMatchObject({ champion: '2', previous: ['3'], revision: 2 });
    expect((await routes.audit(MODEL, 10)).map((e) => `${e.revision} ${e.action} ${e.to}`)).toEqual(['2 promote 2', '1 init 3']);
  });
});

describe('the routing recorded beside the versions, for a start after the routing store lost everything', () => {
  it('is kept by every change and what replicas follow, and a first start begins from it, not from the highest version', async () => {
    const { root, served } = await rolledBack();
    const recorded = () => JSON.parse(readFileSync(join(root, MODEL, 'routing.json'), 'utf8')) as Routing;
    expect(recorded()).toEqual(served);
    // A Redis without persistence restarted while no replica ran: a new, empty store.
    const routes = new MemoryRoutingStore();
    const replica = new ModelRegistry(root, routes);
    const first = await replica.ensureRouting(MODEL, 'inference');
    expect(first).toMatchObject({ champion: '1', previous: [], revision: 4, updated_by: 'inference' });
    expect(first.reason).toMatch(/^no routing stored: restored from the registry's record of revision 3 \(routing\.json\)$/);
    expect((await routes.audit(MODEL, 10)).map((e) => `${e.revision} ${e.action} ${e.to}`)).toEqual(['4 restore 1']);
    expect(recorded()).toEqual(first);
    // A rollout is restored with its champion.
    const canary = await replica.rollout(MODEL, { kind: 'canary', version: '2', percent: 10 }, ['3'], 'ops', 'canary 2');
    expect(recorded()).toEqual(canary);
    const again = await new ModelRegistry(root, new MemoryRoutingStore()).ensureRouting(MODEL, 'inference');
    expect(again).toMatchObject({ champion: '1', policy: { kind: 'canary', version: '2', percent: 10 }, shadows: ['3'], revision: 6 });
  });

  it('is passed over when its champion cannot serve, and its rollout when a version of it cannot', async () => {
    const { root } = await rolledBack();
    const replica = new ModelRegistry(root, new MemoryRoutingStore());
    await replica.ensureRouting(MODEL, 'inference');
    await replica.rollout(MODEL, { kind: 'canary', version: '2', percent: 10 }, [], 'ops', 'canary 2');
    // Version 2's copy is lost: the champion alone.
    rmSync(join(root, MODEL, '2', 'manifest.json'));
    const championOnly = await new ModelRegistry(root, new MemoryRoutingStore()).ensureRouting(MODEL, 'inference');
    expect(championOnly).toMatchObject({ champion: '1', policy: { kind: 'champion' }, shadows: [], revision: 6 });
    expect(championOnly.reason).toMatch(/its rollout could not be restored, champion only$/);
    // Version 1's copy is lost too: the highest version that serves.
    rmSync(join(root, MODEL, '1', 'manifest.json'));
    const highest = await new ModelRegistry(root, new MemoryRoutingStore()).ensureRouting(MODEL, 'inference');
    expect(highest).toMatchObject({ champion: '3', revision: 1, reason: 'first start: the highest registered version' });
  });

  it('is not used when it is not a routing of the model, and a directory that cannot keep it is reported once', async () => {
    const { root } = await rolledBack();
    const warnings: string[] = [];
    writeFileSync(join(root, MODEL, 'routing.json'), JSON.stringify({ model: 'other', champion: '1', previous: [], revision: 3 }));
    const misnamed = await new ModelRegistry(root, new MemoryRoutingStore(), undefined, {
      warn: (message) => warnings.push(message),
    }).ensureRouting(MODEL, 'inference');
    expect(misnamed).toMatchObject({ champion: '3', revision: 1 });
    expect(warnings.splice(0)).toEqual([expect.stringMatching(/routing\.json is not a routing of fraud_detector; not used$/)]);
    rmSync(join(root, MODEL, 'routing.json'));
    // A directory in its place: it can be neither read nor replaced (as a read-only registry, even for root).
    mkdirSync(join(root, MODEL, 'routing.json'));
    const replica = new ModelRegistry(root, new MemoryRoutingStore(), undefined, { warn: (message) => warnings.push(message) });
    expect(await replica.ensureRouting(MODEL, 'inference')).toMatchObject({ champion: '3', revision: 1 });
    await replica.promote(MODEL, '2', 'ops', 'promote 2');
    expect(warnings).toEqual([
      expect.stringMatching(/^cannot record the routing of fraud_detector in .*routing\.json \(.*\); without that record/),
    ]);
    // The obstacle gone, the next change is recorded: no record of an older routing is left behind.
    rmSync(join(root, MODEL, 'routing.json'), { recursive: true });
    await replica.rollback(MODEL, 'ops', 'back to 3');
    expect(JSON.parse(readFileSync(join(root, MODEL, 'routing.json'), 'utf8'))).toMatchObject({ champion: '3', revision: 3 });
    expect(warnings).toHaveLength(1);
  });
});
