import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryOnlineStore, TributaryError, type EntityKey, type MemoryEventLog } from '@tributary/shared';
import { MemoryRoutingStore } from '../src/registry/routing.js';
import { buildTestApp, routeFromElsewhere, validRequest } from './build.js';
import {
  foreignVersion,
  integerOutputVersion,
  logisticVersion,
  tempRegistry,
  twoRowVersion,
  batchWideVersion,
  unboundedVersion,
  type BuiltVersion,
} from './models.js';

const ADMIN = 'ops-admin-secret-0001';
const CLIENT = 'client-secret-000001';
type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  await current?.app.close();
  current = null;
});

async function boot(env: Record<string, string> = {}) {
  const registryDir = tempRegistry();
  current = await buildTestApp({ env: { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}`, ...env } });
  return { ...current, registryDir };
}

const admin = (app: App['app'], method: 'GET' | 'POST', url: string, payload?: object, key = ADMIN) =>
  app.inject({ method, url, payload, headers: { authorization: `Bearer ${key}` } });
const register = (app: App['app'], built: BuiltVersion) =>
  admin(app, 'POST', `/admin/models/${built.manifest.name}/versions`, {
    manifest: built.manifest,
    model_base64: built.bytes.toString('base64'),
  });

async function predictExplained(app: App['app']) {
  const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: validRequest });
  expect(response.statusCode).toBe(200);
  const body = response.json() as { score: number; model: { version: string }; explanation: { value: number }[] };
  return { ...body, vector: body.explanation.map((e) => e.value) };
}

describe('model registry: admin API', () => {
  it('refuses admin requests without an admin key, and all of them when no admin key is configured', async () => {
    const { app } = await boot({ API_KEYS: `client:${CLIENT}` });
    expect((await app.inject({ method: 'GET', url: '/admin/models/fraud_detector' })).statusCode).toBe(401);
    // A client's key is known but not allowed here: 403; an unknown key: 401.
    const wrong = await admin(app, 'GET', '/admin/models/fraud_detector', undefined, CLIENT);
    expect(wrong.statusCode).toBe(403);
    expect(wrong.json()).toMatchObject({ code: 'FORBIDDEN', message: 'this key is not an admin API key' });
    const unknown = await admin(app, 'GET', '/admin/models/fraud_detector', undefined, 'not-a-key-of-anyone-0001');
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json()).toMatchObject({ code: 'UNAUTHORIZED', message: 'this key is not an admin API key' });
    expect((await app.inject({ method: 'GET', url: '/admin/models/fraud_detector', headers: { 'x-api-key': ADMIN } })).statusCode).toBe(
      200,
    );
    await app.close();

    current = await buildTestApp({ env: { MODEL_REGISTRY_DIR: tempRegistry() } });
    const disabled = await admin(current.app, 'GET', '/admin/models/fraud_detector');
    expect(disabled.statusCode).toBe(403);
    expect(disabled.json().message).toMatch(/ADMIN_API_KEYS/);
  });

  it('registers, promotes and rolls back versions; predictions follow at once, scored as the model computes them', async () => {
    const { app } = await boot();
    const v2 = logisticVersion('2', 0.002, -1.5);
    const registered = await register(app, v2);
    expect(registered.statusCode).toBe(201);
    expect(registered.json()).toMatchObject({ version: '2', features: 15, sha256: v2.manifest.sha256 });

    let listed = (await admin(app, 'GET', '/admin/models/fraud_detector')).json();
    expect(listed.versions.map((v: { version: string }) => v.version)).toEqual(['1', '2']);
    expect(listed.serving).toBe('1');
    expect(listed.routing).toMatchObject({ champion: '1', revision: 1, updated_by: 'inference' });
    expect((await predictExplained(app)).model.version).toBe('1');

    const promoted = await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'better AUC on last week' });
    expect(promoted.statusCode).toBe(200);
    expect(promoted.json()).toMatchObject({
      champion: '2',
      previous: ['1'],
      revision: 2,
      updated_by: 'ops',
      reason: 'better AUC on last week',
    });
    const served = await predictExplained(app);
    expect(served.model.version).toBe('2');
    expect(served.score).toBeCloseTo(v2.expected(served.vector), 6);

    const rolledBack = await admin(app, 'POST', '/admin/models/fraud_detector/rollback', { reason: 'canary alert' });
    expect(rolledBack.json()).toMatchObject({ champion: '1', previous: [], revision: 3 });
    expect((await predictExplained(app)).model.version).toBe('1');
    const noMore = await admin(app, 'POST', '/admin/models/fraud_detector/rollback', { reason: 'again' });
    expect(noMore.statusCode).toBe(409);

    const audit = (await admin(app, 'GET', '/admin/models/fraud_detector/audit')).json().entries;
    expect(audit.map((e: { action: string; from: string | null; to: string; by: string }) => [e.action, e.from, e.to, e.by])).toEqual([
      ['rollback', '2', '1', 'ops'],
      ['promote', '1', '2', 'ops'],
      ['init', null, '1', 'inference'],
    ]);
    listed = (await admin(app, 'GET', '/admin/models/fraud_detector/audit?limit=1')).json();
    expect(listed.entries).toHaveLength(1);
  });

  it('answers 404 for the audit log of a model it does not know, as for the model itself', async () => {
    const { app } = await boot();
    for (const url of ['/admin/models/no_such_model', '/admin/models/no_such_model/audit']) {
      const answer = await admin(app, 'GET', url);
      expect(answer.statusCode, url).toBe(404);
      expect(answer.json(), url).toEqual({ code: 'NOT_FOUND', message: 'no model no_such_model in the registry' });
    }
  });

  it('serves a model built elsewhere (its own input and output names, a class-probability output) without code changes', async () => {
    const { app } = await boot();
    const foreign = foreignVersion('byo-1');
    expect((await register(app, foreign)).statusCode).toBe(201);
    expect(
      (await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: 'byo-1', reason: 'bring your own model' })).statusCode,
    ).toBe(200);
    const served = await predictExplained(app);
    expect(served.model.version).toBe('byo-1');
    expect(served.vector).toHaveLength(3);
    expect(served.vector[0]).toBe(validRequest.features.amount);
    expect(served.score).toBeCloseTo(foreign.expected(served.vector), 6);
  });

  it('rejects a broken version with a clear error and keeps serving the old one', async () => {
    const { app } = await boot();
    const good = logisticVersion('3', 0.001, -2);
    const cases: [string, object, RegExp][] = [
      [
        'a hash that does not match',
        { manifest: { ...good.manifest, sha256: 'a'.repeat(64) }, model_base64: good.bytes.toString('base64') },
        /sha256 .* does not match/,
      ],
      [
        'bytes that are not ONNX',
        {
          manifest: { ...good.manifest, sha256: logisticVersion('3', 0, 0).manifest.sha256 },
          model_base64: Buffer.from('not a model').toString('base64'),
        },
        /sha256|onnxruntime cannot load/,
      ],
      [
        'a feature the service cannot compute',
        {
          manifest: { ...good.manifest, features: [...good.manifest.features.slice(1), 'user_transactions:no_such_feature'] },
          model_base64: good.bytes.toString('base64'),
        },
        /no_such_feature/,
      ],
      [
        'fewer features than the model has inputs',
        { manifest: { ...good.manifest, features: good.manifest.features.slice(0, 3) }, model_base64: good.bytes.toString('base64') },
        /\[rows, 3\] is expected/,
      ],
      [
        'an output of integers, not scores',
        { manifest: integerOutputVersion('3').manifest, model_base64: integerOutputVersion('3').bytes.toString('base64') },
        /output "score" holds int64 values; scores must be float32 or float64/,
      ],
      [
        'an output it does not have',
        { manifest: { ...good.manifest, output: 'probability' }, model_base64: good.bytes.toString('base64') },
        /no output "probability"/,
      ],
    ];
    for (const [what, payload, message] of cases) {
      const response = await admin(app, 'POST', '/admin/models/fraud_detector/versions', payload);
      expect(response.statusCode, what).toBe(422);
      expect(response.json().code, what).toBe('MODEL_REJECTED');
      expect(response.json().message, what).toMatch(message);
    }
    const badName = await admin(app, 'POST', '/admin/models/fraud_detector/versions', {
      manifest: { ...good.manifest, version: '..' },
      model_base64: good.bytes.toString('base64'),
    });
    expect(badName.statusCode).toBe(400);
    expect((await register(app, good)).statusCode).toBe(201);
    const again = await register(app, good);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toMatch(/immutable/);
    const missing = await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '9', reason: 'typo' });
    expect(missing.statusCode).toBe(404);
    expect((await predictExplained(app)).model.version).toBe('1');
  });

  it('refuses a model that cannot score a single row (a fixed batch dimension, a graph that needs two rows) or whose output does not follow the rows', async () => {
    const { app } = await boot();
    const fixed = await register(app, twoRowVersion('2', true));
    expect(fixed.statusCode).toBe(422);
    expect(fixed.json()).toMatchObject({ code: 'MODEL_REJECTED' });
    expect(fixed.json().message).toMatch(
      /input "features" has a fixed batch dimension \(shape \[2, 15\]\); its first dimension must be symbolic or -1/,
    );
    const twoRows = await register(app, twoRowVersion('3', false));
    expect(twoRows.statusCode).toBe(422);
    expect(twoRows.json().message).toMatch(/test run on 1 row failed/);
    // Two values whatever the batch: each row's score would be taken from the batch's, not its own.
    const batchWide = await register(app, batchWideVersion('4'));
    expect(batchWide.statusCode).toBe(422);
    expect(batchWide.json().message).toMatch(/output "score" has shape \[2\] for 1 row: one score row per input row is expected/);
    expect((await admin(app, 'GET', '/admin/models/fraud_detector')).json().versions).toHaveLength(1);
    expect((await predictExplained(app)).model.version).toBe('1');
  });

  it('answers 422 (retrying the same input will not help) when the model scores NaN or Infinity, counts it and logs no prediction', async () => {
    const { app, registry, eventLog } = await boot();
    for (const [version, built] of [
      ['nan', unboundedVersion('nan', 'Sqrt', -1)],
      ['inf', unboundedVersion('inf', 'Exp', 1000)],
    ] as const) {
      expect((await register(app, built)).statusCode).toBe(201);
      expect((await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version, reason: 'try' })).statusCode).toBe(200);
      const single = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
      expect(single.statusCode).toBe(422);
      expect(single.headers['retry-after']).toBeUndefined();
      expect(single.json()).toMatchObject({ code: 'MODEL_OUTPUT_INVALID' });
      expect(single.json().message).toMatch(
        new RegExp(`model fraud_detector version ${version} gave a non-finite score \\((NaN|Infinity)\\)`),
      );
      const batch = await app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [validRequest, validRequest] } });
      expect(batch.statusCode).toBe(422);
      expect(batch.json()).toMatchObject({ code: 'MODEL_OUTPUT_INVALID', field: 'rows.0' });
      expect(batch.json().message).toMatch(new RegExp(`model fraud_detector version ${version} gave a non-finite score .* for rows\\.0`));
      expect(await registry.metrics()).toMatch(
        new RegExp(`tributary_model_nonfinite_scores_total\\{model="fraud_detector",version="${version}"\\} 3`),
      );
    }
    const openapi = (await app.inject('/docs/json')).json() as { paths: Record<string, { post: { responses: object } }> };
    for (const path of ['/v1/predict', '/v1/predict/batch']) expect(Object.keys(openapi.paths[path]!.post.responses)).toContain('422');
    await app.predictionLog.flush();
    expect((eventLog as MemoryEventLog).records('predictions')).toHaveLength(0);
  });

  it('refuses the names __proto__, constructor and prototype for a version, registering it or giving it feedback', async () => {
    const { app } = await boot();
    for (const version of ['__proto__', 'constructor', 'prototype']) {
      const registered = await register(app, logisticVersion(version, 0.002, -1.5));
      expect(registered.statusCode, version).toBe(400);
      expect(registered.json().code).toBe('VALIDATION_FAILED');
      const feedback = await admin(app, 'POST', '/admin/models/fraud_detector/feedback', { version, reward: 1, trials: 1 });
      expect(feedback.statusCode, version).toBe(400);
      expect(feedback.json().message).toBe(`"${version}" is not a valid model name or version`);
    }
    expect(({} as Record<string, unknown>).trials).toBeUndefined();
    expect((await admin(app, 'GET', '/admin/models/fraud_detector')).json().versions).toHaveLength(1);
  });

  it('refuses a version named after the routing record and a model file named after the manifest, and registers the version fixed', async () => {
    const { app, registryDir } = await boot();
    const record = logisticVersion('routing.json', 0.002, -1.5);
    const refused = await register(app, record);
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('routing record') });
    const built = logisticVersion('2', 0.002, -1.5);
    const named = await register(app, { ...built, manifest: { ...built.manifest, file: 'manifest.json' } });
    expect(named.statusCode).toBe(400);
    expect(named.json()).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining("version's manifest") });
    // A reference profile the monitor could not read (it would leave the version without drift).
    for (const profile of ['garbage', { features: { 'request:amount': { edges: [3, 1], counts: [1, 1, 1], count: 3 } } }]) {
      const unprofiled = await register(app, { ...built, manifest: { ...built.manifest, profile } });
      expect(unprofiled.statusCode).toBe(400);
      expect(unprofiled.json()).toMatchObject({
        code: 'VALIDATION_FAILED',
        field: 'manifest.profile',
        message: expect.stringMatching(/^manifest\.profile: /),
      });
    }
    // Nothing was written: the version's name is still free.
    expect(existsSync(join(registryDir, 'fraud_detector', '2'))).toBe(false);
    expect((await register(app, built)).statusCode).toBe(201);
    expect((await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'fixed' })).statusCode).toBe(200);
  });

  it('starts on the recorded champion, or else the highest version, while the routing store does not answer, then follows the routing', async () => {
    const registryDir = tempRegistry();
    const routes = Object.assign(new MemoryRoutingStore(), { down: false });
    const get = routes.get.bind(routes);
    routes.get = (model) => (routes.down ? Promise.reject(new TributaryError('ROUTING_STORE_UNAVAILABLE', 'down')) : get(model));
    const env = { MODEL_REGISTRY_DIR: registryDir, ROUTING_POLL_INTERVAL: '60s' };
    // A first replica stores the routing: version 1, the only one. Then version 2 is registered, not promoted.
    await (await buildTestApp({ env, routes })).app.close();
    const v2 = logisticVersion('2', 0.002, -1.5);
    mkdirSync(join(registryDir, 'fraud_detector', '2'));
    writeFileSync(join(registryDir, 'fraud_detector', '2', 'model.onnx'), v2.bytes);
    writeFileSync(join(registryDir, 'fraud_detector', '2', 'manifest.json'), JSON.stringify(v2.manifest));
    routes.down = true;
    // The champion of the routing recorded in the registry directory by the first replica.
    current = await buildTestApp({ env, routes });
    expect((await predictExplained(current.app)).model.version).toBe('1');
    expect(current.app.serving.followsRouting).toBe(false);
    await current.app.close();
    // Without a record: the highest registered version.
    rmSync(join(registryDir, 'fraud_detector', 'routing.json'));
    current = await buildTestApp({ env, routes });
    expect((await predictExplained(current.app)).model.version).toBe('2');
    routes.down = false;
    await current.app.serving.refresh();
    expect((await predictExplained(current.app)).model.version).toBe('1');
    expect(current.app.serving.followsRouting).toBe(true);
  });

  it('writes back the routing it read when the store loses it, never promoting the highest registered version', async () => {
    // Two replicas on one routing store; version 2 is registered and runs as a shadow only.
    const routes = new MemoryRoutingStore();
    const { app, registryDir } = await boot();
    await app.close();
    // A first start on the new store (not one from the routing recorded beside the versions).
    rmSync(join(registryDir, 'fraud_detector', 'routing.json'));
    const env = { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}`, ROUTING_POLL_INTERVAL: '60s' };
    current = await buildTestApp({ env, routes });
    const other = await buildTestApp({ env, routes });
    try {
      expect((await register(current.app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
      const shadowed = await admin(current.app, 'POST', '/admin/models/fraud_detector/rollout', {
        policy: { kind: 'champion' },
        shadows: ['2'],
        reason: 'shadow 2',
      });
      expect(shadowed.json()).toMatchObject({ champion: '1', shadows: ['2'], revision: 2 });
      await other.app.serving.refresh();
      // The store loses the key (a Redis restarted without persistence, flushed, evicting).
      (routes as unknown as { routes: Map<string, unknown> }).routes.delete('fraud_detector');
      await current.app.serving.refresh();
      await other.app.serving.refresh();
      const stored = await routes.get('fraud_detector');
      expect(stored).toMatchObject({ champion: '1', shadows: ['2'], revision: 3, updated_by: 'inference' });
      expect(stored!.reason).toMatch(/routing lost/);
      expect((await predictExplained(current.app)).model.version).toBe('1');
      expect((await predictExplained(other.app)).model.version).toBe('1');
      expect((await routes.audit('fraud_detector', 1))[0]).toMatchObject({ action: 'restore', to: '1', revision: 3 });
      // Lost again, and an operator changes the rollout before any poll: the change starts from the served routing.
      (routes as unknown as { routes: Map<string, unknown> }).routes.delete('fraud_detector');
      const changed = await admin(current.app, 'POST', '/admin/models/fraud_detector/rollout', {
        policy: { kind: 'champion' },
        shadows: [],
        reason: 'no shadow',
      });
      expect(changed.json()).toMatchObject({ champion: '1', shadows: [], revision: 5 });
      expect((await predictExplained(current.app)).model.version).toBe('1');
    } finally {
      await other.app.close();
    }
  });

  it('after the store lost the routing, restores a promotion a lagging replica had not read from the shared record, and every replica agrees on one routing', async () => {
    const routes = new MemoryRoutingStore();
    const { app, registryDir } = await boot();
    await app.close();
    rmSync(join(registryDir, 'fraud_detector', 'routing.json'));
    const env = { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}`, ROUTING_POLL_INTERVAL: '60s' };
    const promoting = await buildTestApp({ env, routes });
    current = promoting;
    const lagging = await buildTestApp({ env, routes });
    const lose = () => (routes as unknown as { routes: Map<string, unknown> }).routes.delete('fraud_detector');
    try {
      expect((await register(promoting.app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
      // Promoted through one replica; the other has not polled since, and the store loses the routing.
      const promote = (version: string) =>
        admin(promoting.app, 'POST', '/admin/models/fraud_detector/promote', { version, reason: `to ${version}` });
      expect((await promote('2')).json()).toMatchObject({ champion: '2', revision: 2 });
      lose();
      // The lagging replica polls first: the registry directory's record of revision 2 is newer than what it read.
      await lagging.app.serving.refresh();
      await promoting.app.serving.refresh();
      expect(await routes.get('fraud_detector')).toMatchObject({ champion: '2', previous: ['1'], revision: 3, updated_by: 'inference' });
      expect((await predictExplained(lagging.app)).model.version).toBe('2');
      expect((await predictExplained(promoting.app)).model.version).toBe('2');

      // Without that record (replicas with a registry directory each): the lagging replica writes back what it read,
      // as the revision the other one already follows; that one follows it all the same, so both serve one routing.
      expect((await promote('1')).json()).toMatchObject({ champion: '1', revision: 4 });
      lose();
      rmSync(join(registryDir, 'fraud_detector', 'routing.json'));
      await lagging.app.serving.refresh();
      await promoting.app.serving.refresh();
      expect(await routes.get('fraud_detector')).toMatchObject({ champion: '2', revision: 4 });
      expect((await predictExplained(lagging.app)).model.version).toBe('2');
      expect((await predictExplained(promoting.app)).model.version).toBe('2');
    } finally {
      await lagging.app.close();
    }
  });

  it('answers a promotion only once this replica serves it, even while a poll that read the old routing is under way', async () => {
    const registryDir = tempRegistry();
    const routes = new MemoryRoutingStore();
    // The next read of the routing is held (after reading) until released: a poll in flight.
    let hold: Promise<void> | null = null;
    const get = routes.get.bind(routes);
    routes.get = async (model) => {
      const held = hold;
      hold = null;
      const read = await get(model);
      if (held) await held;
      return read;
    };
    current = await buildTestApp({
      env: { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}`, ROUTING_POLL_INTERVAL: '60s' },
      routes,
    });
    const { app } = current;
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    let release!: () => void;
    hold = new Promise<void>((resolve) => (release = resolve));
    const poll = app.serving.refresh(); // reads revision 1, then waits
    // The promotion's own refresh joins that poll; the poll is let go only then.
    const refresh = app.serving.refresh.bind(app.serving);
    app.serving.refresh = () => {
      const joined = refresh();
      release();
      return joined;
    };
    const promoted = await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'better' });
    expect(promoted.statusCode).toBe(200);
    expect((await predictExplained(app)).model.version).toBe('2');
    await poll;
  });

  it('keeps serving the old version when a routed version fails to load on this replica', async () => {
    const { app, registryDir, registry } = await boot();
    const v2 = logisticVersion('2', 0.002, -1.5);
    expect((await register(app, v2)).statusCode).toBe(201);
    // The file changes on disk after registration (a bad copy on this replica's volume).
    const file = join(registryDir, 'fraud_detector', '2', 'model.onnx');
    writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from([0])]));
    // Another replica (or the CLI) routes to it without checking this copy.
    await routeFromElsewhere(app, '2');
    expect((await predictExplained(app)).model.version).toBe('1');
    expect(await registry.metrics()).toMatch(/tributary_model_reloads_total\{outcome="rejected"\} 1/);
    expect(await registry.metrics()).toMatch(/tributary_model_serving\{model="fraud_detector",version="1"\} 1/);
    // Refusing the routing the store holds, as long as it holds it (the alert's gauge).
    expect(await registry.metrics()).toMatch(/^tributary_model_routing_refused 1$/m);
    await app.serving.refresh();
    expect(await registry.metrics()).toMatch(/^tributary_model_routing_refused 1$/m);
    // Promoting through the API checks the version first and refuses it.
    const refused = await admin(app, 'POST', '/admin/models/fraud_detector/rollback', { reason: 'back to 1' });
    expect(refused.statusCode).toBe(200);
    expect(await registry.metrics()).toMatch(/^tributary_model_routing_refused 0$/m);
    const promote = await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'retry' });
    expect(promote.statusCode).toBe(422);
    expect(promote.json().message).toMatch(/sha256/);
    // The listing names the damaged version and why, apart from those that can serve.
    const listed = (await admin(app, 'GET', '/admin/models/fraud_detector')).json();
    expect(listed.versions.map((v: { version: string }) => v.version)).toEqual(['1']);
    expect(listed.damaged).toEqual([
      { version: '2', reason: expect.stringMatching(/model.onnx: sha256 \w+ does not match the manifest's/) },
    ]);
  });

  it('lets a request that began on a version finish on it, though the version is retired meanwhile', async () => {
    // A store whose reads wait for a gate: the request takes its snapshot (v1), then waits for its features.
    let gate: Promise<void> | null = null;
    let reading: () => void = () => undefined;
    const read = new Promise<void>((resolve) => (reading = resolve));
    class GatedStore extends MemoryOnlineStore {
      override async read(keys: EntityKey[]) {
        if (gate) {
          reading();
          await gate;
        }
        return super.read(keys);
      }
    }
    const registryDir = tempRegistry();
    current = await buildTestApp({
      env: { MODEL_REGISTRY_DIR: registryDir, ADMIN_API_KEYS: `ops:${ADMIN}`, FEATURE_FETCH_TIMEOUT_MS: '10000' },
      store: new GatedStore(),
    });
    const { app } = current;
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    let open: () => void = () => undefined;
    gate = new Promise<void>((resolve) => (open = resolve));
    const inFlight = app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    await read;
    gate = null;
    // v2 takes over and v1 is routed no more, while the request still waits for its features.
    expect((await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: 'retire v1' })).statusCode).toBe(200);
    // Its features arrive at once: it scores on v1, which must still have its workers.
    open();
    const response = await inFlight;
    expect(response.statusCode).toBe(200);
    expect(response.json().model.version).toBe('1');
    expect((await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).json().model.version).toBe('2');
  });

  it('swaps versions under concurrent requests without failing one', async () => {
    const { app } = await boot();
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    const statuses = new Map<number, number>();
    const versions = new Set<string>();
    let running = true;
    const client = async () => {
      while (running) {
        const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        if (response.statusCode === 200) versions.add(response.json().model.version);
      }
    };
    const clients = Array.from({ length: 16 }, client);
    for (let i = 0; i < 3; i++) {
      expect((await admin(app, 'POST', '/admin/models/fraud_detector/promote', { version: '2', reason: `swap ${i}` })).statusCode).toBe(
        200,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await admin(app, 'POST', '/admin/models/fraud_detector/rollback', { reason: `back ${i}` })).statusCode).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    running = false;
    await Promise.all(clients);
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    expect([...versions].sort()).toEqual(['1', '2']);
  }, 60_000);
});
