/**
 * The operations server of a service that takes a while to start: `/metrics` from the first
 * moment, `/healthz` 503 `starting` until the service says it has started, then 200.
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
      ready: async () => {
        if (!started) throw new Error('starting');
      },
    });
    close = ops.close;
    applied.inc(3);
    const metrics = await fetch(`${ops.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/starting_test_applied_total 3/);
    const starting = await fetch(`${ops.url}/healthz`);
    expect(starting.status).toBe(503);
    expect(await starting.json()).toEqual({ status: 'starting' });
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(503);
    started = true;
    const ok = await fetch(`${ops.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(200);
  });

  it('counts a service without a start phase as started', async () => {
    const ops = await startOpsServer({ registry: new Registry(), host: '127.0.0.1', port: 0, ready: async () => {} });
    close = ops.close;
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
  });
});
