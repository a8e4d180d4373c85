import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildProfile, ConfigError, loadConfig, MemoryEventLog, startOpsServer, type Logger } from '@tributary/shared';
import { Registry } from 'prom-client';
import { MemoryJoinStore } from '../src/join-store.js';
import { MemoryRewardStore, MemoryRoutingStore } from '@tributary/inference/routing';
import { createJoinStore, manifestsFrom, monitorDependencies, monitorSettings } from '../src/connections.js';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function register(model: string, version: string, manifest: object): void {
  mkdirSync(join(dir, model, version), { recursive: true });
  writeFileSync(join(dir, model, version, 'manifest.json'), JSON.stringify(manifest));
}

describe('manifestsFrom', () => {
  it("reads a version's threshold and profile from its manifest, and the defaults for unknown, odd or broken ones", () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    const profile = buildProfile([{ x: 1 }, { x: 2 }], [{ name: 'x', kind: 'numeric' }]);
    register('fraud', '1', { threshold: 0.3, profile });
    register('fraud', '2', { threshold: 7 });
    mkdirSync(join(dir, 'fraud', '3'));
    writeFileSync(join(dir, 'fraud', '3', 'manifest.json'), '{not json');
    register('escape', '1', { threshold: 0.1 });
    const manifests = manifestsFrom(join(dir, 'fraud', '..'));
    expect([manifests.thresholdOf('fraud', '1'), manifests.profileOf('fraud', '1')]).toEqual([0.3, profile]);
    expect([manifests.thresholdOf('fraud', '2'), manifests.profileOf('fraud', '2')]).toEqual([0.5, null]);
    expect(manifests.thresholdOf('fraud', '3')).toBe(0.5);
    expect(manifests.thresholdOf('fraud', '9')).toBe(0.5);
    // A name that would leave the version's folder is never read.
    expect(manifests.thresholdOf('fraud', '../../escape/1')).toBe(0.5);
  });

  it('monitors a version whose manifest has a malformed profile without one, and logs why', () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    const profile = buildProfile(
      [
        { x: 1, c: 'FR' },
        { x: 2, c: 'DE' },
      ],
      [
        { name: 'x', kind: 'numeric' },
        { name: 'c', kind: 'categorical' },
      ],
    );
    const x = profile.features.x!;
    const c = profile.features.c!;
    register('fraud', '1', { threshold: 0.3, profile: { ...profile, features: { x: { ...x, counts: [3, null, 3] } } } });
    register('fraud', '2', { threshold: 0.4, profile: { ...profile, features: { c: { ...c, categories: undefined } } } });
    register('fraud', '3', { threshold: 0.6, profile });
    const logged: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { error: (fields: Record<string, unknown>, message: string) => logged.push({ fields, message }) } as unknown as Logger;
    const manifests = manifestsFrom(dir, logger);
    expect([manifests.thresholdOf('fraud', '1'), manifests.profileOf('fraud', '1')]).toEqual([0.3, null]);
    expect([manifests.thresholdOf('fraud', '2'), manifests.profileOf('fraud', '2')]).toEqual([0.4, null]);
    expect([manifests.thresholdOf('fraud', '3'), manifests.profileOf('fraud', '3')]).toEqual([0.6, profile]);
    expect(logged.map((l) => [l.fields.version, l.message])).toEqual([
      ['1', expect.stringMatching(/^the reference profile in the manifest of fraud 1 is invalid \(features\.x.*monitored without drift$/)],
      [
        '2',
        expect.stringMatching(/^the reference profile in the manifest of fraud 2 is invalid \(.*features\.c.*monitored without drift$/),
      ],
    ]);
  });

  it('warns once for each version served without a readable manifest, saying why, and monitors it with the defaults', () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    register('fraud', '1', { threshold: 0.3 });
    mkdirSync(join(dir, 'fraud', '2'));
    writeFileSync(join(dir, 'fraud', '2', 'manifest.json'), '{not json');
    register('fraud', '3', [0.3]);
    const warned: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { warn: (fields: Record<string, unknown>, message: string) => warned.push({ fields, message }) } as unknown as Logger;
    const manifests = manifestsFrom(dir, logger, () => 1_000);
    for (let i = 0; i < 3; i++) {
      for (const version of ['1', '2', '3', '9', '../1']) manifests.thresholdOf('fraud', version);
      manifests.profileOf('fraud', '9');
    }
    expect(manifests.thresholdOf('fraud', '1')).toBe(0.3);
    expect(warned.map((w) => [w.fields.version, w.message])).toEqual([
      [
        '2',
        expect.stringMatching(
          new RegExp(
            `^no readable manifest for fraud 2 in ${dir} \\(.*JSON.*\\): the version is monitored with threshold 0.5 and without drift until its manifest is read \\(tried again in 30 s\\)$`,
          ),
        ),
      ],
      ['3', expect.stringMatching(/^no readable manifest for fraud 3 .*\(manifest.json is not a JSON object\)/)],
      ['9', expect.stringMatching(/^no readable manifest for fraud 9 .*\(ENOENT: no such file or directory/)],
      ['../1', expect.stringMatching(/^no readable manifest for fraud \.\.\/1 .*\(not the name of a folder of the registry\)[^(]*$/)],
    ]);
  });

  it('reads a manifest that could not be read again 30 s later, warning again while it still fails', () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    const profile = buildProfile([{ x: 1 }, { x: 2 }], [{ name: 'x', kind: 'numeric' }]);
    let now = 1_000;
    const warned: unknown[] = [];
    const logger = { warn: (fields: Record<string, unknown>) => warned.push(fields.version) } as unknown as Logger;
    const manifests = manifestsFrom(dir, logger, () => now);
    // The version's first prediction comes before its manifest is in place.
    expect([manifests.thresholdOf('fraud', '1'), manifests.profileOf('fraud', '1')]).toEqual([0.5, null]);
    now += 29_999;
    register('fraud', '1', { threshold: 0.3, profile });
    expect(manifests.thresholdOf('fraud', '1')).toBe(0.5);
    expect(manifests.thresholdOf('fraud', '../1')).toBe(0.5);
    now += 1;
    expect([manifests.thresholdOf('fraud', '1'), manifests.profileOf('fraud', '1')]).toEqual([0.3, profile]);
    // Still missing 30 s later: warned again, once.
    for (let i = 0; i < 3; i++) manifests.thresholdOf('fraud', '2');
    now += 30_000;
    for (let i = 0; i < 3; i++) manifests.thresholdOf('fraud', '2');
    // A name that would leave the version's folder can never be read: warned once for good.
    manifests.thresholdOf('fraud', '../1');
    expect(warned).toEqual(['1', '../1', '2', '2']);
  });

  it('keeps the last 1,024 versions read: one asked for again after a stream of odd versions is read again', () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    const manifests = manifestsFrom(dir);
    register('fraud', '1', { threshold: 0.3 });
    expect(manifests.thresholdOf('fraud', '1')).toBe(0.3);
    register('fraud', '1', { threshold: 0.2 });
    // Still the answer read first, while it is kept...
    expect(manifests.thresholdOf('fraud', '1')).toBe(0.3);
    for (let i = 0; i < 1_024; i++) manifests.thresholdOf('fraud', `odd-${i}`);
    // ...and read again once it was forgotten.
    expect(manifests.thresholdOf('fraud', '1')).toBe(0.2);
  });
});

describe('monitorSettings', () => {
  it('refuses a MODEL_REGISTRY_DIR that does not exist or is not a directory, naming it', () => {
    dir = mkdtempSync(join(tmpdir(), 'tributary-manifests-'));
    writeFileSync(join(dir, 'file'), '');
    for (const [registry, problem] of [
      [join(dir, 'nowhere'), 'no such directory'],
      [join(dir, 'file'), 'not a directory'],
    ] as const) {
      const config = loadConfig({ MODEL_REGISTRY_DIR: registry });
      expect(() => monitorSettings(config)).toThrow(ConfigError);
      expect(() => monitorSettings(config)).toThrow(
        `invalid configuration:\n  MODEL_REGISTRY_DIR="${registry}": ${problem} (the monitor reads each version's threshold and reference profile from its manifest there)`,
      );
    }
  });

  it('takes the bundled registry by default', async () => {
    const settings = monitorSettings(loadConfig({}));
    expect(settings.thresholdOf('fraud_detector', '1')).toBeGreaterThan(0);
    await settings.joins.close();
  });
});

describe('createJoinStore', () => {
  it('refuses to keep the pending joins in memory while the offsets go to Kafka, and only warns in one process (npm start)', async () => {
    const onKafka = loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092' });
    expect(() => createJoinStore(onKafka)).toThrow(ConfigError);
    expect(() => createJoinStore(onKafka)).toThrow(
      /KAFKA_BROKERS is set but REDIS_URL is not: .* every pending join would be lost at a restart; set REDIS_URL/,
    );
    const warned: string[] = [];
    const logger = { warn: (message: string) => warned.push(message) } as unknown as Logger;
    const embedded = createJoinStore(onKafka, { logger, embedded: true });
    expect(embedded).toBeInstanceOf(MemoryJoinStore);
    expect(warned).toEqual([expect.stringMatching(/^KAFKA_BROKERS is set but REDIS_URL is not: .*allowed in one process for a demo/)]);
    // The embedded default (no broker): memory, said nothing.
    expect(createJoinStore(loadConfig({}), { logger })).toBeInstanceOf(MemoryJoinStore);
    expect(warned).toHaveLength(1);
    await embedded.close();
  });

  it('keeps a prediction a label joined for MONITOR_JOIN_REPLAY_HORIZON, within the join window', async () => {
    const store = createJoinStore(loadConfig({ MONITOR_JOIN_REPLAY_HORIZON: '5m' }));
    const deadline = Date.now() + 7 * 86_400_000;
    await store.offer([
      { side: 'prediction', requestId: 'r', unit: 'champion:m:1', record: '0:1', value: 'p', deadline },
      { side: 'label', requestId: 'r', record: '1:1', value: 'l', deadline },
    ]);
    const after = Date.now();
    expect(await store.sweep(after + 5 * 60_000, 100)).toEqual({ predictions: 0, labels: 0, taken: 1 });
    await store.close();
  });
});

describe("the monitor's /readyz", () => {
  it('reports its join store beside the event log; the deep check fails while the join store does not answer', async () => {
    // Nothing listens on port 1: the store's Redis is down.
    const stores = { down: createJoinStore(loadConfig({ REDIS_URL: 'redis://127.0.0.1:1' })), up: createJoinStore(loadConfig({})) };
    const eventLog = new MemoryEventLog();
    for (const [state, joins] of Object.entries(stores)) {
      const ops = await startOpsServer({
        registry: new Registry(),
        host: '127.0.0.1',
        port: 0,
        notReady: () => null,
        dependencies: monitorDependencies(eventLog, joins),
      });
      try {
        const ready = await fetch(`${ops.url}/readyz`);
        expect(ready.status, state).toBe(200);
        expect(await ready.json(), state).toMatchObject({ status: 'ready', dependencies: { event_log: 'up', join_store: state } });
        const deep = await fetch(`${ops.url}/readyz?deep=true`);
        expect(deep.status, state).toBe(state === 'up' ? 200 : 503);
        if (state === 'down')
          expect(await deep.json()).toMatchObject({ reason: 'join_store down', problems: { join_store: expect.any(String) } });
      } finally {
        await ops.close();
        await joins.close();
      }
    }
  });

  it('reports the routing and reward stores its rollouts write to, as the monitor is started; the deep check fails while they do not answer', async () => {
    const eventLog = new MemoryEventLog();
    const cases = [
      // Nothing listens on port 1: the Redis of every store is down.
      { name: 'on Redis, down', settings: monitorSettings(loadConfig({ REDIS_URL: 'redis://127.0.0.1:1' })), state: 'down' },
      {
        name: 'sharing the stores of the process',
        settings: monitorSettings(loadConfig({}), { routes: new MemoryRoutingStore(), rewards: new MemoryRewardStore() }),
        state: 'up',
      },
    ];
    for (const { name, settings, state } of cases) {
      const ops = await startOpsServer({
        registry: new Registry(),
        host: '127.0.0.1',
        port: 0,
        notReady: () => null,
        dependencies: monitorDependencies(eventLog, settings.joins, settings.rollouts),
      });
      try {
        const ready = await fetch(`${ops.url}/readyz`);
        expect(ready.status, name).toBe(200);
        expect(await ready.json(), name).toMatchObject({
          status: 'ready',
          dependencies: { event_log: 'up', join_store: state, routing_store: state, reward_store: state },
        });
        const deep = await fetch(`${ops.url}/readyz?deep=true`);
        expect(deep.status, name).toBe(state === 'up' ? 200 : 503);
        if (state === 'down')
          expect(await deep.json()).toMatchObject({
            reason: 'join_store, routing_store, reward_store down',
            problems: { routing_store: expect.any(String), reward_store: expect.any(String) },
          });
      } finally {
        await ops.close();
        await Promise.all([settings.joins.close(), settings.rollouts?.close()]);
      }
    }
    // A monitor on its own without Redis takes no part in rollouts: no such store to report.
    const alone = monitorSettings(loadConfig({}));
    expect(Object.keys(monitorDependencies(eventLog, alone.joins, alone.rollouts)).sort()).toEqual(['event_log', 'join_store']);
  });
});
