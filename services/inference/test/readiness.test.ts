/**
 * `/readyz` of the inference service: ready while the replica can serve (model loaded, not
 * shutting down), whatever Redis and Kafka do, since it serves degraded predictions, buffers
 * its prediction log and follows the routing it last read through their outages; the state of
 * each (online, routing and reward stores, event log) is in the body, and the operators' deep
 * check (`?deep=true`) fails while one is down.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore, TributaryError } from '@tributary/shared';
import { MemoryRoutingStore } from '../src/registry/routing.js';
import { buildTestApp, validRequest } from './build.js';

let current: Awaited<ReturnType<typeof buildTestApp>> | undefined;
afterEach(async () => {
  await current?.app.close();
  current = undefined;
});

function storeDown() {
  const store = new MemoryOnlineStore();
  const down = () => Promise.reject(new Error('Connection is closed.'));
  store.ping = down;
  store.read = down;
  return store;
}

describe('GET /readyz', () => {
  it('answers ready with every dependency up', async () => {
    current = await buildTestApp();
    const response = await current.app.inject('/readyz');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      status: 'ready',
      model: { name: 'fraud_detector', version: '1' },
      dependencies: { online_store: 'up', event_log: 'up', routing_store: 'up', reward_store: 'up' },
    });
    expect((await current.app.inject('/readyz?deep=true')).statusCode).toBe(200);
  });

  it('stays ready while the online store is down, when predictions are served degraded; the deep check fails', async () => {
    current = await buildTestApp({ store: storeDown() });
    const prediction = await current.app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(prediction.statusCode).toBe(200);
    expect(prediction.json().degraded).toBe(true);

    const ready = await current.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({
      status: 'ready',
      model: { name: 'fraud_detector', version: '1' },
      dependencies: { online_store: 'down', event_log: 'up', routing_store: 'up', reward_store: 'up' },
      problems: { online_store: 'Connection is closed.' },
    });
    const deep = await current.app.inject('/readyz?deep=true');
    expect(deep.statusCode).toBe(503);
    expect(deep.json()).toMatchObject({
      status: 'not ready',
      reason: 'online_store down',
      dependencies: { online_store: 'down', event_log: 'up' },
      problems: { online_store: 'Connection is closed.' },
    });
  });

  it('stays ready while the event log is down, when the prediction log buffers', async () => {
    const eventLog = new MemoryEventLog();
    eventLog.ping = () => Promise.reject(new Error('broker unreachable'));
    current = await buildTestApp({ eventLog });
    const ready = await current.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().dependencies).toEqual({ online_store: 'up', event_log: 'down', routing_store: 'up', reward_store: 'up' });
    expect((await current.app.inject('/readyz?deep=1')).statusCode).toBe(503);
  });

  it('answers without waiting for a dependency that does not answer at all', async () => {
    const store = new MemoryOnlineStore();
    store.ping = () => new Promise(() => {});
    current = await buildTestApp({ store });
    const ready = await current.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ dependencies: { online_store: 'down' }, problems: { online_store: 'no answer within 1000 ms' } });
  });

  it('is not ready while it serves the version it guessed because the routing could not be read, and is once it follows it', async () => {
    const routes = new MemoryRoutingStore();
    const get = routes.get.bind(routes);
    let routingDown = true;
    const down = () => Promise.reject(new TributaryError('ROUTING_STORE_UNAVAILABLE', 'down'));
    routes.get = (model) => (routingDown ? down() : get(model));
    routes.ping = () => (routingDown ? down() : Promise.resolve());
    current = await buildTestApp({ routes, env: { ROUTING_POLL_INTERVAL: '1h' } });
    const guessing = await current.app.inject('/readyz');
    expect(guessing.statusCode).toBe(503);
    expect(guessing.json()).toMatchObject({
      status: 'not ready',
      reason: 'the routing of fraud_detector has not been read yet: serving the highest registered version until it can be',
    });
    routingDown = false;
    await current.app.serving.refresh();
    expect((await current.app.inject('/readyz')).statusCode).toBe(200);
    // Once followed, a routing store that stops answering leaves it ready: it serves the routing it has.
    // The store is reported down, and the deep check fails on it.
    routingDown = true;
    await current.app.serving.refresh();
    const following = await current.app.inject('/readyz');
    expect(following.statusCode).toBe(200);
    expect(following.json()).toMatchObject({
      status: 'ready',
      dependencies: { routing_store: 'down' },
      problems: { routing_store: 'down' },
    });
    const deep = await current.app.inject('/readyz?deep=true');
    expect(deep.statusCode).toBe(503);
    expect(deep.json()).toMatchObject({ reason: 'routing_store down' });
  });

  // Nothing listens on port 1: the Redis of the routing and reward stores is down.
  const REDIS_DOWN = { REDIS_URL: 'redis://127.0.0.1:1', ROUTING_POLL_INTERVAL: '1h' };

  it('reports the reward store on Redis, down while its Redis does not answer: still ready (bandits keep the rewards they read), the deep check fails', async () => {
    current = await buildTestApp({ routes: new MemoryRoutingStore(), env: REDIS_DOWN });
    const ready = await current.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      dependencies: { online_store: 'up', event_log: 'up', routing_store: 'up', reward_store: 'down' },
      problems: { reward_store: expect.any(String) },
    });
    const deep = await current.app.inject('/readyz?deep=true');
    expect(deep.statusCode).toBe(503);
    expect(deep.json()).toMatchObject({ status: 'not ready', reason: 'reward_store down' });
  });

  it('reports the routing store on Redis, down while its Redis does not answer', async () => {
    current = await buildTestApp({ env: REDIS_DOWN });
    // Not ready because it could never read the routing (above), whatever the body reports.
    const ready = await current.app.inject('/readyz');
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({
      dependencies: { online_store: 'up', event_log: 'up', routing_store: 'down', reward_store: 'down' },
      problems: { routing_store: expect.any(String), reward_store: expect.any(String) },
    });
  });

  // The service answers every request 503 from the moment it closes.
  it('is not ready once the replica shuts down', async () => {
    current = await buildTestApp();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    current.app.addHook('onClose', () => held);
    const closing = current.app.close();
    const response = await current.app.inject('/readyz');
    release();
    await closing;
    current = undefined;
    expect(response.statusCode).toBe(503);
  });

  it('refuses a deep flag it does not understand rather than answering the shallow check', async () => {
    current = await buildTestApp();
    const response = await current.app.inject('/readyz?deep=yes');
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({ code: 'BAD_REQUEST', message: 'deep must be true or false' });
  });
});
