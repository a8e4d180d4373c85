/** Rollouts through the admin API: canary, shadows, sticky A/B arms, a bandit fed by reward feedback. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryOnlineStore, type MemoryEventLog, type PredictionLogRecord } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { buildTestApp, validRequest } from './build.js';
import { logisticVersion, tempRegistry, typedVersion, type BuiltVersion } from './models.js';

const ADMIN = 'ops-admin-secret-0001';
type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | null = null;
afterEach(async () => {
  await current?.app.close();
  current = null;
});

async function boot() {
  current = await buildTestApp({ env: { MODEL_REGISTRY_DIR: tempRegistry(), ADMIN_API_KEYS: `ops:${ADMIN}` } });
  return current;
}
const admin = (app: App['app'], url: string, payload: object) =>
  app.inject({ method: 'POST', url, payload, headers: { authorization: `Bearer ${ADMIN}` } });
const register = (app: App['app'], built: BuiltVersion) =>
  admin(app, `/admin/models/${built.manifest.name}/versions`, { manifest: built.manifest, model_base64: built.bytes.toString('base64') });
const rollout = (app: App['app'], body: object) => admin(app, '/admin/models/fraud_detector/rollout', body);

async function predict(app: App['app'], requestId: string, user = 'u_1') {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/predict?explain=true',
    payload: { ...validRequest, request_id: requestId, entities: { ...validRequest.entities, user_id: user } },
  });
  expect(response.statusCode).toBe(200);
  return response.json() as { score: number; variant: string; model: { version: string }; explanation: { value: number }[] };
}

describe('rollouts', () => {
  it('a canary answers its share of requests, a shadow scores every request unseen, and a promotion ends the canary', async () => {
    const { app, eventLog } = await boot();
    const v2 = logisticVersion('2', 0.002, -1.5);
    const v3 = logisticVersion('3', -0.001, -2);
    for (const built of [v2, v3]) expect((await register(app, built)).statusCode).toBe(201);

    const set = await rollout(app, { policy: { kind: 'canary', version: '2', percent: 30 }, shadows: ['3'], reason: 'try v2 on 30%' });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ champion: '1', policy: { kind: 'canary', version: '2', percent: 30 }, shadows: ['3'], revision: 2 });

    const answers = [];
    for (let i = 0; i < 200; i++) answers.push(await predict(app, `canary-${i}`));
    const canary = answers.filter((a) => a.model.version === '2');
    expect(canary.length).toBeGreaterThan(30);
    expect(canary.length).toBeLessThan(90);
    expect(canary.every((a) => a.variant === 'canary')).toBe(true);
    expect(answers.filter((a) => a.model.version === '1').every((a) => a.variant === 'champion')).toBe(true);
    expect(answers.some((a) => a.model.version === '3')).toBe(false);
    for (const a of canary) expect(a.score).toBeCloseTo(v2.expected(Float32Array.from(a.explanation.map((e) => e.value))), 6);
    // The same request id again: the same version.
    expect((await predict(app, 'canary-7')).model.version).toBe(answers[7]!.model.version);

    // Every request is also scored by the shadow, logged with variant shadow.
    const log = eventLog as MemoryEventLog;
    const records = () => log.records('predictions').map((r) => JSON.parse(String(r.value)) as PredictionLogRecord);
    await waitFor(() => records().filter((r) => r.variant === 'shadow').length === 201, { timeoutMs: 10_000, what: 'shadow records' });
    const shadows = records().filter((r) => r.variant === 'shadow');
    expect(shadows.every((r) => r.model.version === '3')).toBe(true);
    expect(new Set(shadows.map((r) => r.request_id)).size).toBe(200);
    const served = records().filter((r) => r.variant !== 'shadow');
    expect(served.filter((r) => r.variant === 'canary').length).toBe(canary.length + (answers[7]!.model.version === '2' ? 1 : 0));
    for (const r of shadows.slice(0, 20)) expect(r.score).toBeCloseTo(v3.expected(Float32Array.from(Object.values(r.features))), 6);

    const audit = (
      await app.inject({ method: 'GET', url: '/admin/models/fraud_detector/audit', headers: { authorization: `Bearer ${ADMIN}` } })
    ).json().entries;
    expect(audit[0]).toMatchObject({
      action: 'rollout',
      by: 'ops',
      reason: 'try v2 on 30%',
      from: 'champion 1',
      to: 'champion 1; canary 2 at 30%; shadows 3',
    });

    const promoted = await admin(app, '/admin/models/fraud_detector/promote', { version: '2', reason: 'canary is better' });
    expect(promoted.json()).toMatchObject({ champion: '2', policy: { kind: 'champion' }, shadows: ['3'] });
    for (let i = 0; i < 20; i++) expect(await predict(app, `after-${i}`)).toMatchObject({ model: { version: '2' }, variant: 'champion' });
  });

  it('a rollout without shadows keeps the current ones (but a version it routes to); an empty list ends them', async () => {
    const { app } = await boot();
    for (const [version, weight] of [
      ['2', 0.002],
      ['3', 0.003],
    ] as const) {
      expect((await register(app, logisticVersion(version, weight, -1.5))).statusCode).toBe(201);
    }
    const body = (policy: object, shadows?: string[]) => ({ policy, ...(shadows ? { shadows } : {}), reason: 'r' });
    expect((await rollout(app, body({ kind: 'champion' }, ['2', '3']))).json()).toMatchObject({ shadows: ['2', '3'], revision: 2 });
    const canary = await rollout(app, body({ kind: 'canary', version: '2', percent: 10 }));
    expect(canary.statusCode).toBe(200);
    expect(canary.json()).toMatchObject({ policy: { kind: 'canary', version: '2' }, shadows: ['3'] });
    expect((await rollout(app, body({ kind: 'champion' }))).json()).toMatchObject({ policy: { kind: 'champion' }, shadows: ['3'] });
    expect((await rollout(app, body({ kind: 'champion' }, []))).json()).toMatchObject({ policy: { kind: 'champion' }, shadows: [] });
    for (let i = 0; i < 5; i++) expect(await predict(app, `none-${i}`)).toMatchObject({ model: { version: '1' }, variant: 'champion' });
  });

  it('a shadow scores the features its request read: one read of the store per request, the same values', async () => {
    const store = new MemoryOnlineStore();
    let reads = 0;
    const read = store.read.bind(store);
    store.read = (keys) => {
      reads++;
      return read(keys);
    };
    const { app, eventLog } = (current = await buildTestApp({
      env: { MODEL_REGISTRY_DIR: tempRegistry(), ADMIN_API_KEYS: `ops:${ADMIN}` },
      store,
    }));
    for (const built of [logisticVersion('2', 0.002, -1.5), logisticVersion('3', -0.001, -2)]) {
      expect((await register(app, built)).statusCode).toBe(201);
    }
    for (const policy of [{ kind: 'champion' }, { kind: 'canary', version: '2', percent: 50 }]) {
      expect((await rollout(app, { policy, shadows: ['3'], reason: 'shadow 3' })).statusCode).toBe(200);
      reads = 0;
      for (let i = 0; i < 10; i++) await predict(app, `${policy.kind}-${i}`);
      await waitFor(
        () =>
          (eventLog as MemoryEventLog).records('predictions').filter((r) => String(r.value).includes(`"request_id":"${policy.kind}-9"`))
            .length === 2,
        { timeoutMs: 10_000, what: 'the shadow of the last request' },
      );
      expect(reads, policy.kind).toBe(10);
    }
    const records = (eventLog as MemoryEventLog).records('predictions').map((r) => JSON.parse(String(r.value)) as PredictionLogRecord);
    const shadow = records.find((r) => r.variant === 'shadow' && r.request_id === 'champion-0')!;
    const answered = records.find((r) => r.variant === 'champion' && r.request_id === 'champion-0')!;
    expect(shadow.features).toEqual(answered.features);
    expect(shadow.degraded).toBe(answered.degraded);
  });

  it('an A/B test keeps each user on one arm', async () => {
    const { app } = await boot();
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    const set = await rollout(app, {
      policy: {
        kind: 'ab',
        arms: [
          { version: '1', weight: 1 },
          { version: '2', weight: 1 },
        ],
        entity: 'user_id',
      },
      reason: 'A/B v1 against v2',
    });
    expect(set.statusCode).toBe(200);
    const arms = new Map<string, string>();
    for (let i = 0; i < 120; i++) {
      const user = `u_${i % 30}`;
      const answer = await predict(app, `ab-${i}`, user);
      expect(answer.variant).toBe('ab');
      if (arms.has(user)) expect(answer.model.version, user).toBe(arms.get(user));
      arms.set(user, answer.model.version);
    }
    expect(new Set(arms.values())).toEqual(new Set(['1', '2']));
    // A batch's rows are scored per arm; an error names the row's place in the batch, not in its arm.
    const onArm = (version: string) => [...arms].find(([, v]) => v === version)![0];
    const row = (user: string, entities: object = { ...validRequest.entities, user_id: user }) => ({ ...validRequest, entities });
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/predict/batch',
      payload: { rows: [row(onArm('1')), row(onArm('2')), row(onArm('2'), { user_id: onArm('2') })] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'rows.2.entities.merchant_id' });
  });

  it('refuses an A/B entity that is not an entity key of every arm; a stored one that is no key places requests by their id', async () => {
    const { app } = await boot();
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    const arms = [
      { version: '1', weight: 1 },
      { version: '2', weight: 1 },
    ];
    for (const entity of ['constructor', 'user', '__proto__']) {
      const refused = await rollout(app, { policy: { kind: 'ab', arms, entity }, reason: 'typo' });
      expect(refused.statusCode, entity).toBe(400);
      expect(refused.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'policy.entity' });
      expect(refused.json().message).toBe(
        `the A/B entity "${entity}" is not an entity key of version 1 (its entity keys: user_id, merchant_id)`,
      );
    }
    const routing = (await app.models.routing('fraud_detector'))!;
    expect(routing).toMatchObject({ revision: 1, policy: { kind: 'champion' } });
    // Written by an older release, which did not check the entity: requests are still answered.
    const stored = { ...routing, policy: { kind: 'ab' as const, arms, entity: 'constructor' }, revision: 2 };
    const audit = { at: routing.updated_at, by: 'old', action: 'rollout' as const, reason: 'old', from: null, to: '1', revision: 2 };
    expect((await app.models.routes.update(stored, 1, audit)).ok).toBe(true);
    await app.serving.refresh();
    const versions = [];
    for (let i = 0; i < 40; i++) {
      const answer = await predict(app, `ab-${i}`, 'u_1');
      expect(answer.variant).toBe('ab');
      versions.push(answer.model.version);
    }
    // In the arms' shares (not every one on the first arm), the same request id on the same arm.
    expect(new Set(versions)).toEqual(new Set(['1', '2']));
    expect((await predict(app, 'ab-7', 'u_2')).model.version).toBe(versions[7]);
  });

  it('an A/B test without an entity is kept on the first entity key every arm reads, stored with it; with none, 400', async () => {
    const { app } = await boot();
    const merchantOnly = typedVersion('2', ['merchant_transactions:count_1h', 'request:amount']);
    const requestOnly = typedVersion('3', ['request:amount']);
    for (const built of [merchantOnly, requestOnly]) expect((await register(app, built)).statusCode).toBe(201);
    const ab = (...versions: string[]) => ({ kind: 'ab', arms: versions.map((version) => ({ version, weight: 1 })) });

    // The champion (1) reads user_id first, which version 2 does not: merchant_id, which both read.
    const set = await rollout(app, { policy: ab('1', '2'), reason: 'A/B per merchant' });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ policy: { kind: 'ab', entity: 'merchant_id' } });
    const arms = new Map<string, string>();
    for (let i = 0; i < 60; i++) {
      const merchant = `m_${i % 12}`;
      const response = await app.inject({
        method: 'POST',
        url: '/v1/predict',
        payload: { ...validRequest, request_id: `m-${i}`, entities: { user_id: `u_${i}`, merchant_id: merchant } },
      });
      const version = (response.json() as { model: { version: string } }).model.version;
      if (arms.has(merchant)) expect(version, merchant).toBe(arms.get(merchant));
      arms.set(merchant, version);
    }
    expect(new Set(arms.values())).toEqual(new Set(['1', '2']));

    const refused = await rollout(app, { policy: ab('1', '3'), reason: 'no common entity' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ code: 'VALIDATION_FAILED', field: 'policy.entity' });
    expect(refused.json().message).toMatch(/^no entity key is read by every arm \(version 1: user_id, merchant_id; version 3: none\)/);
    expect((await app.models.routing('fraud_detector'))!).toMatchObject({ policy: { kind: 'ab', entity: 'merchant_id' } });
  });

  it('a bandit sends most traffic to the version with better reward feedback', async () => {
    const { app } = await boot();
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    expect((await rollout(app, { policy: { kind: 'bandit', versions: ['1', '2'] }, reason: 'bandit' })).statusCode).toBe(200);
    const share = async (from: number) => {
      let two = 0;
      for (let i = from; i < from + 100; i++) if ((await predict(app, `b-${i}`)).model.version === '2') two++;
      return two / 100;
    };
    const before = await share(0);
    expect(before).toBeGreaterThan(0.25);
    expect(before).toBeLessThan(0.75);
    for (const [version, reward] of [
      ['1', 300],
      ['2', 450],
    ] as const) {
      const feedback = await admin(app, '/admin/models/fraud_detector/feedback', { version, reward, trials: 500 });
      expect(feedback.statusCode).toBe(204);
    }
    // Feedback for what is not registered is refused: it would feed a bandit nothing serves.
    for (const [url, version, message] of [
      ['/admin/models/fraud_detector/feedback', '77', 'model fraud_detector has no version 77 in the registry'],
      ['/admin/models/no_such_model/feedback', '1', 'model no_such_model has no version 1 in the registry'],
    ] as const) {
      const refused = await admin(app, url, { version, reward: 1 });
      expect(refused.statusCode).toBe(404);
      expect(refused.json()).toMatchObject({ code: 'NOT_FOUND', message });
    }
    expect(await share(100)).toBeGreaterThan(0.95);
    const tooMuch = await admin(app, '/admin/models/fraud_detector/feedback', { version: '2', reward: 3, trials: 2 });
    expect(tooMuch.statusCode).toBe(400);
    expect(tooMuch.json().message).toMatch(/above the number of trials/);
  });

  it('a bandit started after feedback was given uses it from its first request', async () => {
    const { app } = await boot();
    expect((await register(app, logisticVersion('2', 0.002, -1.5))).statusCode).toBe(201);
    for (const [version, reward] of [
      ['1', 0],
      ['2', 1000],
    ] as const) {
      expect((await admin(app, '/admin/models/fraud_detector/feedback', { version, reward, trials: 1000 })).statusCode).toBe(204);
    }
    expect((await rollout(app, { policy: { kind: 'bandit', versions: ['1', '2'] }, reason: 'bandit on feedback' })).statusCode).toBe(200);
    let two = 0;
    for (let i = 0; i < 100; i++) if ((await predict(app, `f-${i}`)).model.version === '2') two++;
    expect(two).toBeGreaterThan(95);
  });

  it('refuses rollouts that cannot serve, and keeps the routing as it was', async () => {
    const { app } = await boot();
    const missing = await rollout(app, { policy: { kind: 'canary', version: '9', percent: 10 }, reason: 'typo' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toMatch(/no version 9/);
    const self = await rollout(app, { policy: { kind: 'champion' }, shadows: ['1'], reason: 'shadow of itself' });
    expect(self.statusCode).toBe(400);
    expect(self.json().message).toMatch(/champion; it cannot also be a shadow/);
    const forged = await rollout(app, { policy: { kind: 'champion' }, reason: 'fine\nrevision 9 promote by admin' });
    expect(forged.statusCode).toBe(400);
    expect(forged.json().field).toBe('reason');
    const percent = await rollout(app, { policy: { kind: 'canary', version: '1', percent: 150 }, reason: 'too much' });
    expect(percent.statusCode).toBe(400);
    const unknownKind = await rollout(app, { policy: { kind: 'mirror' }, reason: 'no such policy' });
    expect(unknownKind.statusCode).toBe(400);
    const routing = (
      await app.inject({ method: 'GET', url: '/admin/models/fraud_detector', headers: { authorization: `Bearer ${ADMIN}` } })
    ).json().routing;
    expect(routing).toMatchObject({ champion: '1', revision: 1 });
    expect((await predict(app, 'still')).model.version).toBe('1');
  });
});
