import { afterEach, describe, expect, it, vi } from 'vitest';
import { dependencyChecks } from '../src/readiness.js';

describe('dependencyChecks', () => {
  afterEach(() => vi.useRealTimers());

  it('reports a dependency that does not answer within the deadline as down, without waiting for it', async () => {
    vi.useFakeTimers();
    const check = dependencyChecks({ redis: { ping: () => new Promise(() => {}) } }, 1_000);
    const report = check();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await report).toEqual({ dependencies: { redis: 'down' }, problems: { redis: 'no answer within 1000 ms' } });
  });

  it('asks again at every check unless told to reuse an answer, and reuses it for that long', async () => {
    vi.useFakeTimers();
    let redisAsked = 0;
    let kafkaAsked = 0;
    const check = dependencyChecks({
      redis: { ping: async () => void redisAsked++ },
      kafka: { ping: async () => void kafkaAsked++, reuseMs: 5_000 },
    });
    await check();
    await check();
    expect([redisAsked, kafkaAsked]).toEqual([2, 1]);
    await vi.advanceTimersByTimeAsync(5_000);
    await check();
    expect([redisAsked, kafkaAsked]).toEqual([3, 2]);
  });

  it('reports a ping that throws at once as down, with its message', async () => {
    const check = dependencyChecks({
      kafka: {
        ping: () => {
          throw new Error('not connected');
        },
      },
    });
    expect(await check()).toEqual({ dependencies: { kafka: 'down' }, problems: { kafka: 'not connected' } });
  });
});
