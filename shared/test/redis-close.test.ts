import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { closeRedis, RedisOnlineStore } from '../src/index.js';

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('closing a Redis client that never connected', () => {
  it('drops it instead of queueing a QUIT it would keep retrying to send', async () => {
    const client = new Redis(await closedPort(), '127.0.0.1', { lazyConnect: false, retryStrategy: () => 50 });
    const quit = vi.spyOn(client, 'quit');
    const disconnect = vi.spyOn(client, 'disconnect');
    await closeRedis(client);
    expect(quit).not.toHaveBeenCalled();
    expect(disconnect).toHaveBeenCalled();
  });

  it('closes the online store the same way', async () => {
    const store = new RedisOnlineStore({ url: `redis://127.0.0.1:${await closedPort()}`, keyPrefix: 'test:' });
    // A read makes the store open its client, which then keeps reconnecting.
    await expect(store.read([{ group: 'g', id: 'x' }] as never)).rejects.toThrow();
    const quit = vi.spyOn(store.client, 'quit');
    const disconnect = vi.spyOn(store.client, 'disconnect');
    await store.close();
    expect(quit).not.toHaveBeenCalled();
    expect(disconnect).toHaveBeenCalled();
  });
});
