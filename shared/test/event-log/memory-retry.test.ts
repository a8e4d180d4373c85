import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryEventLog } from '../../src/event-log/memory.js';
import { retryDelayMs } from '../../src/event-log/types.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('the in-memory event log retrying a failed batch', () => {
  it('fetches the partition again after a backoff that doubles up to 5 s, as the Kafka event log does', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const log = new MemoryEventLog();
    await log.ensureTopics([{ name: 'events', partitions: 1 }]);
    await log.publish('events', [{ key: 'k', value: 'v' }]);
    const attempts: number[] = [];
    const started = Date.now();
    const subscription = await log.subscribe({
      groupId: 'g',
      topics: ['events'],
      fromBeginning: true,
      eachBatch: async () => {
        attempts.push(Date.now() - started);
        throw new Error('not yet');
      },
    });
    for (let elapsed = 0; elapsed < 20_000; elapsed += 50) await vi.advanceTimersByTimeAsync(50);
    await subscription.stop();
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
    expect(gaps.slice(0, 8)).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(retryDelayMs(1)).toBe(100);
  });
});
