/**
 * The operations server of a service that takes a while to start: `/metrics` from the first
 * moment, `/healthz` 503 `starting` until the service says it has started, then 200; `/readyz`
 * ready once started and until it stops, its dependencies reported beside and required only by
 * the deep check.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { startOpsServer } from '../src/ops-server.js';

describe('the operations server while its service starts', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => close?.());

  it('serves metrics at once, and answers /healthz 503 until the service has started', async () => {
    const registry = new Registry();
    const applied = new Counter({ name: 'starting_test_applied_total', help: 'applied before the start is over', registers: [registry] });
    let started = false;
    const ops = await startOpsServer({
      registry,
      host: '127.0.0.1',
      port: 0,
      started: () => started,
      notReady: () => (started ? null : 'starting'),
      dependencies: {},
    });
    close = ops.close;
    applied.inc(3);
    const metrics = await fetch(`${ops.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/starting_test_applied_total 3/);
    const starting = await fetch(`${ops.url}/healthz`);
    expect(starting.status).toBe(503);
    expect(await starting.json()).toEqual({ status: 'starting' });
    const notReady = await fetch(`${ops.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: 'not ready', reason: 'starting', dependencies: {} });
    started = true;
    const ok = await fetch(`${ops.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(200);
  });

  it('counts a service without a start phase as started', async () => {
    const ops = await startOpsServer({ registry: new Registry(), host: '127.0.0.1', port: 0, notReady: () => null, dependencies: {} });
    close = ops.close;
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
  });
});

describe('/readyz of a consumer', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => close?.());

  it('stays ready while a dependency is down and reports it; the deep check fails', async () => {
    let redisUp = false;
    const ops = await startOpsServer({
      registry: new Registry(),
      host: '127.0.0.1',
      port: 0,
      notReady: () => null,
      dependencies: {
        online_store: { ping: async () => (redisUp ? undefined : Promise.reject(new Error('Connection is closed.'))) },
        event_log: { ping: async () => undefined },
      },
    });
    close = ops.close;
    const ready = await fetch(`${ops.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      dependencies: { online_store: 'down', event_log: 'up' },
      problems: { online_store: 'Connection is closed.' },
    });
    const deep = await fetch(`${ops.url}/readyz?deep=true`);
    expect(deep.status).toBe(503);
    expect(await deep.json()).toEqual({
      status: 'not ready',
      reason: 'online_store down',
      dependencies: { online_store: 'down', event_log: 'up' },
      problems: { online_store: 'Connection is closed.' },
    });
    redisUp = true;
    const back = await fetch(`${ops.url}/readyz?deep=true`);
    expect(back.status).toBe(200);
    expect(await back.json()).toEqual({ status: 'ready', dependencies: { online_store: 'up', event_log: 'up' } });
  });

  it('is not ready while the service stops', async () => {
    let stopping = false;
    const ops = await startOpsServer({
      registry: new Registry(),
      host: '127.0.0.1',
      port: 0,
      notReady: () => (stopping ? 'stopping' : null),
      dependencies: {},
    });
    close = ops.close;
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(200);
    stopping = true;
    const response = await fetch(`${ops.url}/readyz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: 'not ready', reason: 'stopping' });
  });

  it('refuses a deep flag it does not understand', async () => {
    const ops = await startOpsServer({ registry: new Registry(), host: '127.0.0.1', port: 0, notReady: () => null, dependencies: {} });
    close = ops.close;
    for (const query of ['deep=yes', 'deep=true&deep=false']) {
      const response = await fetch(`${ops.url}/readyz?${query}`);
      expect(response.status, query).toBe(400);
    }
    expect((await fetch(`${ops.url}/readyz?deep=false`)).status).toBe(200);
  });
});
