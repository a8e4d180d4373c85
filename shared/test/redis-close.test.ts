import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { freePort } from '../../test/support/ports.js';
import { closeRedis, RedisOnlineStore } from '../src/index.js';

describe('closing a Redis client that never connected', () => {
  it('drops it instead of queueing a QUIT it would keep retrying to send', async () => {
    const client = new Redis(await freePort(), '127.0.0.1', { lazyConnect: false, retryStrategy: () => 50 });
    const quit = vi.spyOn(client, 'quit');
    const disconnect = vi.spyOn(client, 'disconnect');
    await closeRedis(client);
    expect(quit).not.toHaveBeenCalled();
    expect(disconnect).toHaveBeenCalled();
  });

  it('closes the online store the same way', async () => {
    const store = new RedisOnlineStore({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: 'test:' });
    // A read makes the store open its client, which then keeps reconnecting.
    await expect(store.read([{ group: 'g', id: 'x' }] as never)).rejects.toThrow();
    const quit = vi.spyOn(store.client, 'quit');
    const disconnect = vi.spyOn(store.client, 'disconnect');
    await store.close();
    expect(quit).not.toHaveBeenCalled();
    expect(disconnect).toHaveBeenCalled();
  });
});
