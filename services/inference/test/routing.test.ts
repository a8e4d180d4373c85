import { createServer, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { TributaryError } from '@tributary/shared';
import { RedisRewardStore } from '../src/registry/rewards.js';
import { MemoryRoutingStore, RedisRoutingStore, unanswered } from '../src/registry/routing.js';
import { freePort } from '../../../test/support/ports.js';
import { routingStoreContract } from './routing.contract.js';

routingStoreContract('memory', async () => new MemoryRoutingStore());

describe('the Redis routing and reward stores when Redis does not answer', () => {
  it('fail with ROUTING_STORE_UNAVAILABLE (503, retriable), not an error the admin API would answer with 500', async () => {
    const target = { url: `redis://127.0.0.1:${await freePort()}` };
    const routing = new RedisRoutingStore(target, 'test:');
    const rewards = new RedisRewardStore(target, 'test:');
    try {
      for (const call of [
        () => routing.get('m'),
        () => routing.audit('m', 10),
        () => rewards.get('m'),
        () => rewards.add('m', '1', 1, 1),
      ]) {
        const error = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(TributaryError);
        expect(error).toMatchObject({ code: 'ROUTING_STORE_UNAVAILABLE', httpStatus: 503, retriable: true });
        expect((error as Error).message).toMatch(/^the routing store \(Redis\) did not answer: /);
      }
    } finally {
      await Promise.all([routing.close(), rewards.close()]);
    }
  }, 20_000);

  it('fail the same way when Redis accepts the connection and never answers (a frozen process), instead of waiting for ever', async () => {
    // A listener that reads what it is sent and answers nothing: Redis stopped with SIGSTOP, or a hung proxy.
    const sockets: Socket[] = [];
    const frozen = createServer((socket) => sockets.push(socket.on('data', () => {})));
    await new Promise<void>((resolve) => frozen.listen(0, '127.0.0.1', resolve));
    const target = { url: `redis://127.0.0.1:${(frozen.address() as { port: number }).port}` };
    const routing = new RedisRoutingStore(target, 'test:');
    const rewards = new RedisRewardStore(target, 'test:');
    try {
      const outcomes = await Promise.all(
        [() => routing.get('m'), () => routing.audit('m', 10), () => rewards.get('m'), () => rewards.add('m', '1', 1, 1)].map((call) =>
          call().then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      );
      for (const error of outcomes) {
        expect(error).toBeInstanceOf(TributaryError);
        expect(error).toMatchObject({ code: 'ROUTING_STORE_UNAVAILABLE', httpStatus: 503, retriable: true });
        expect(unanswered(error)).toBe(true);
      }
      // A write without an answer may still be applied: said, so that it is not blindly tried again.
      const [read, , , write] = outcomes as Error[];
      expect(read!.message).toBe('the routing store (Redis) did not answer within 2000 ms');
      expect(write!.message).toBe(
        'the routing store (Redis) did not answer within 2000 ms: the change may still be applied (read the routing before trying again)',
      );
    } finally {
      await Promise.all([routing.close(), rewards.close()]);
      for (const socket of sockets) socket.destroy();
      frozen.close();
    }
  }, 20_000);

  it('are closed without a QUIT while they have never connected: the client is dropped, not left reconnecting to send it', async () => {
    const target = { url: `redis://127.0.0.1:${await freePort()}` };
    for (const store of [new RedisRoutingStore(target, 'test:'), new RedisRewardStore(target, 'test:')]) {
      const client = (store as unknown as { client: Redis }).client;
      const quit = vi.spyOn(client, 'quit');
      const disconnect = vi.spyOn(client, 'disconnect');
      await store.close();
      expect(quit, store.constructor.name).not.toHaveBeenCalled();
      expect(disconnect, store.constructor.name).toHaveBeenCalled();
    }
  });
});
