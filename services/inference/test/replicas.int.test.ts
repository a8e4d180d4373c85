/** Replicas on real Redis: they agree on the serving version, follow a promotion within seconds, and survive Redis going away. */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../../test/support/ports.js';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, createRegistry, loadConfig, MemoryEventLog, RedisOnlineStore } from '@tributary/shared';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';
import { createInferenceApp } from '../src/service.js';
import { validRequest } from './build.js';
import { logisticVersion, models, tempRegistry, versionFolder } from './models.js';

const services = realServices();
const ADMIN = 'ops-admin-secret-0001';
const apps: Awaited<ReturnType<typeof createInferenceApp>>[] = [];
const stores: RedisOnlineStore[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const store of stores) await store.close();
});

async function replica(env: Record<string, string>) {
  const config = loadConfig({ LOG_LEVEL: 'silent', SHED_EVENT_LOOP_DELAY_MS: '0', ADMIN_API_KEYS: `ops:${ADMIN}`, ...env });
  const store = new RedisOnlineStore({ url: config.REDIS_URL!, keyPrefix: config.REDIS_KEY_PREFIX, redis: { maxRetriesPerRequest: 1 } });
  stores.push(store);
  const app = await createInferenceApp(config, {
    eventLog: new MemoryEventLog(),
    store,
    registry: createRegistry({ defaultMetrics: false }),
    logger: createLogger('test', 'silent'),
  });
  apps.push(app);
  return app;
}

const version = async (app: Awaited<ReturnType<typeof replica>>) =>
  (await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).json().model.version as string;

describe.skipIf(!services.redisUrl)(
  `inference replicas on Redis${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`,
  () => {
    it('write back the routing they serve when Redis loses it, never promoting a version only shadowed', async () => {
      const env = {
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${uniqueName('replicas')}:`,
        MODEL_REGISTRY_DIR: tempRegistry(),
        ROUTING_POLL_INTERVAL: '60s',
      };
      const [a, b] = [await replica(env), await replica(env)];
      const v2 = logisticVersion('2', 0.002, -1.5);
      const admin = (url: string, payload: object) =>
        a.inject({ method: 'POST', url, headers: { authorization: `Bearer ${ADMIN}` }, payload });
      expect(
        (await admin('/admin/models/fraud_detector/versions', { manifest: v2.manifest, model_base64: v2.bytes.toString('base64') }))
          .statusCode,
      ).toBe(201);
      expect(
        (await admin('/admin/models/fraud_detector/rollout', { policy: { kind: 'champion' }, shadows: ['2'], reason: 'shadow' }))
          .statusCode,
      ).toBe(200);
      await b.serving.refresh();
      // Redis loses the key (restarted without persistence, flushed, evicting).
      expect(await stores[0]!.client.del(`${env.REDIS_KEY_PREFIX}routing:{fraud_detector}`)).toBe(1);
      await a.serving.refresh();
      await b.serving.refresh();
      expect([await version(a), await version(b)]).toEqual(['1', '1']);
      expect(await a.models.routing('fraud_detector')).toMatchObject({ champion: '1', shadows: ['2'], revision: 3 });
      expect((await a.models.audit('fraud_detector', 1))[0]).toMatchObject({ action: 'restore', to: '1', revision: 3 });
      const keys = await stores[0]!.client.keys(`${env.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await stores[0]!.client.del(...keys);
    }, 60_000);

    it('answer a CLI change made after Redis lost the routing from the routing they read, never the highest version', async () => {
      const env = {
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${uniqueName('replicas')}:`,
        MODEL_REGISTRY_DIR: tempRegistry(),
        ROUTING_POLL_INTERVAL: '60s',
      };
      const a = await replica(env);
      const admin = (url: string, payload: object) =>
        a.inject({ method: 'POST', url, headers: { authorization: `Bearer ${ADMIN}` }, payload });
      for (const v of [logisticVersion('2', 0.002, -1.5), logisticVersion('3', 0.003, -1.5)]) {
        const registered = await admin('/admin/models/fraud_detector/versions', {
          manifest: v.manifest,
          model_base64: v.bytes.toString('base64'),
        });
        expect(registered.statusCode).toBe(201);
      }
      // Version 3 was promoted and rolled back: version 1 serves, though 3 is the highest registered.
      expect((await admin('/admin/models/fraud_detector/promote', { version: '3', reason: 'try 3' })).statusCode).toBe(200);
      expect((await admin('/admin/models/fraud_detector/rollback', { reason: '3 misbehaves' })).json()).toMatchObject({
        champion: '1',
        revision: 3,
      });
      const [routingKey, auditKey] = [
        `${env.REDIS_KEY_PREFIX}routing:{fraud_detector}`,
        `${env.REDIS_KEY_PREFIX}routing:{fraud_detector}:audit`,
      ];

      // The routing key alone is lost (evicted) and the replica has not polled yet: the CLI waits
      // (its ROUTING_POLL_INTERVAL: 100ms), then refuses, naming the loss, and changes nothing.
      expect(await stores[0]!.client.del(routingKey)).toBe(1);
      const refused = await models(['promote', '2', '--reason', 'promote 2'], { ...env, ROUTING_POLL_INTERVAL: '100ms' });
      expect([refused.code, refused.stderr]).toEqual([
        1,
        expect.stringMatching(
          /^the routing of fraud_detector is no longer stored .*\nerror: the routing of fraud_detector was lost from the routing store \(the audit log's last change: revision 3, rollback to 1 .*\) and no serving replica wrote it back within 1\.2 s; .*retry once `list` shows a routing/,
        ),
      ]);
      expect(refused.stderr).not.toMatch(/\n\s+at /);
      expect(await a.models.routing('fraud_detector')).toBeNull();
      const listed = await models(['list'], env);
      expect(listed.stdout).toMatch(
        /routing: none stored, though the audit log's last change is revision 3 \(rollback to 1, .*\): lost from Redis/,
      );

      // The whole Redis is lost (restarted without persistence): no audit log either. The CLI waits,
      // the replica writes back the routing it read meanwhile, and the canary starts from it.
      await stores[0]!.client.del(auditKey);
      let restoring: Promise<void> | undefined;
      const canary = await models(
        ['rollout', 'canary', '2', '--percent', '10', '--reason', 'canary 2'],
        { ...env, ROUTING_POLL_INTERVAL: '5s' },
        (text) => {
          if (text.includes('waiting up to')) restoring ??= a.serving.refresh();
        },
      );
      expect([canary.code, canary.stdout]).toEqual([
        0,
        expect.stringMatching(/^fraud_detector: champion 1; canary 2 at 10% \(revision 5, /),
      ]);
      expect(canary.stderr).toMatch(/^no routing of fraud_detector is stored: waiting up to 11 s/);
      expect(restoring).toBeDefined();
      expect((await a.models.audit('fraud_detector', 10)).map((e) => `${e.revision} ${e.action} ${e.to}`)).toEqual([
        '5 rollout champion 1; canary 2 at 10%',
        '4 restore 1',
      ]);
      const keys = await stores[0]!.client.keys(`${env.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await stores[0]!.client.del(...keys);
    }, 60_000);

    it('agree on the champion, and all follow a promotion made on one of them or with the CLI', async () => {
      const env = {
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${uniqueName('replicas')}:`,
        MODEL_REGISTRY_DIR: tempRegistry(),
        ROUTING_POLL_INTERVAL: '200ms',
      };
      const [a, b] = [await replica(env), await replica(env)];
      expect([await version(a), await version(b)]).toEqual(['1', '1']);
      await models(['register', versionFolder(logisticVersion('2', 0.002, -1.5))], env);
      const promoted = await a.inject({
        method: 'POST',
        url: '/admin/models/fraud_detector/promote',
        headers: { authorization: `Bearer ${ADMIN}` },
        payload: { version: '2', reason: 'replicas test' },
      });
      expect(promoted.statusCode).toBe(200);
      expect(await version(a)).toBe('2');
      await waitFor(async () => (await version(b)) === '2', { what: 'the second replica to serve version 2' });

      const rollback = await models(['rollback', '--reason', 'from the CLI', '--by', 'tester'], env);
      expect(rollback.stdout).toMatch(/champion 1 \(revision 3, .* by tester: from the CLI\)/);
      await waitFor(async () => (await version(a)) === '1' && (await version(b)) === '1', { what: 'both replicas back on version 1' });
      const audit = await models(['audit'], env);
      expect(
        audit.stdout
          .trim()
          .split('\n')
          .map((line) => line.replace(/^\S+\s+/, '')),
      ).toEqual([
        'revision 3  rollback 2 -> 1  by tester: from the CLI',
        'revision 2  promote 1 -> 2  by ops: replicas test',
        'revision 1  init - -> 1  by inference: first start: the highest registered version',
      ]);
      const keys = await stores[0]!.client.keys(`${env.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await stores[0]!.client.del(...keys);
    }, 60_000);
  },
);

describe.skipIf(!services.redisUrl)(
  `rollouts across replicas on Redis${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`,
  () => {
    it('a canary set with the CLI and bandit rewards sent to one replica reach the other', async () => {
      const env = {
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${uniqueName('rollout')}:`,
        MODEL_REGISTRY_DIR: tempRegistry(),
        ROUTING_POLL_INTERVAL: '200ms',
      };
      const [a, b] = [await replica(env), await replica(env)];
      await models(['register', versionFolder(logisticVersion('2', 0.002, -1.5))], env);
      const answers = async (app: typeof a, prefix: string) => {
        const versions: string[] = [];
        for (let i = 0; i < 60; i++) {
          const response = await app.inject({
            method: 'POST',
            url: '/v1/predict',
            payload: { ...validRequest, request_id: `${prefix}-${i}` },
          });
          versions.push(`${response.json().model.version}/${response.json().variant}`);
        }
        return versions;
      };

      const canary = await models(['rollout', 'canary', '2', '--percent', '50', '--reason', 'half on v2', '--by', 'tester'], env);
      expect(canary.stdout).toMatch(/champion 1; canary 2 at 50% \(revision 2, .* by tester: half on v2\)/);
      await waitFor(async () => (await answers(b, 'c')).includes('2/canary'), {
        what: 'the second replica to send requests to the canary',
      });
      const split = await answers(b, 'c');
      expect(new Set(split)).toEqual(new Set(['1/champion', '2/canary']));
      // The same request ids get the same versions on every replica, once the first replica has polled the routing too.
      await waitFor(async () => JSON.stringify(await answers(a, 'c')) === JSON.stringify(split), {
        what: 'the first replica to send the same request ids to the same versions',
      });

      await models(['rollout', 'bandit', '1,2', '--reason', 'let the rewards decide'], env);
      const feedback = (version: string, reward: number) =>
        a.inject({
          method: 'POST',
          url: '/admin/models/fraud_detector/feedback',
          headers: { authorization: `Bearer ${ADMIN}` },
          payload: { version, reward, trials: 1000 },
        });
      expect((await feedback('1', 500)).statusCode).toBe(204);
      expect((await feedback('2', 900)).statusCode).toBe(204);
      await waitFor(async () => (await answers(b, 'bandit')).filter((v) => v === '2/bandit').length >= 58, {
        what: 'the second replica to send almost every request to version 2, from the rewards stored in Redis',
      });
      const keys = await stores[0]!.client.keys(`${env.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await stores[0]!.client.del(...keys);
    }, 60_000);
  },
);

function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
}

describe.skipIf(!services.redisUrl)(
  `inference while Redis goes away${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`,
  () => {
    it('serves degraded predictions while Redis is stopped, recovers when it is back, and never answers 5xx', async () => {
      const port = await freePort();
      let redis = startRedis(port);
      const env = { REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: 'outage:', FEATURE_FETCH_TIMEOUT_MS: '100' };
      try {
        const app = await waitFor(() => replica(env).catch(() => null), { what: 'the service to start on the private Redis' });
        const counts = { ok: 0, degraded: 0, failed: 0 };
        const statuses = new Set<number>();
        let running = true;
        const client = async () => {
          while (running) {
            const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
            statuses.add(response.statusCode);
            if (response.statusCode >= 500) counts.failed++;
            else if (response.json().degraded) counts.degraded++;
            else counts.ok++;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        };
        const clients = Array.from({ length: 8 }, client);
        await waitFor(() => counts.ok > 50, { what: 'predictions before the outage' });
        redis.kill('SIGKILL');
        await new Promise((resolve) => redis.once('exit', resolve));
        const before = counts.degraded;
        await waitFor(() => counts.degraded > before + 50, { what: 'degraded predictions during the outage' });
        // Still ready (it serves, following the routing it read), with the stores on Redis reported
        // down; the operators' deep check fails.
        const ready = await app.inject({ method: 'GET', url: '/readyz' });
        expect(ready.statusCode).toBe(200);
        expect(ready.json().dependencies).toEqual({ online_store: 'down', event_log: 'up', routing_store: 'down', reward_store: 'down' });
        const deep = await app.inject({ method: 'GET', url: '/readyz?deep=true' });
        expect(deep.statusCode).toBe(503);
        expect(deep.json().reason).toBe('online_store, routing_store, reward_store down');
        redis = startRedis(port);
        const okAfter = counts.ok;
        await waitFor(() => counts.ok > okAfter + 50, { timeoutMs: 20_000, what: 'full predictions after Redis is back' });
        running = false;
        await Promise.all(clients);
        console.log(
          `Redis outage: ${counts.ok} full, ${counts.degraded} degraded, ${counts.failed} failed predictions; statuses ${[...statuses].join(', ')}`,
        );
        expect(counts.failed).toBe(0);
        expect([...statuses]).toEqual([200]);
        expect((await app.inject({ method: 'GET', url: '/readyz?deep=true' })).statusCode).toBe(200);
      } finally {
        redis.kill('SIGKILL');
      }
    }, 60_000);
  },
);
