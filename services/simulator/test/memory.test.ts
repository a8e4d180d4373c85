/**
 * A long run's memory: the simulator keeps nothing of the transactions that have left. (Each
 * transaction's way raced one promise that stays pending until the stop, which kept a reaction
 * per transaction: `npm start` grew by ~1.8 KB per transaction.) Simulated time (fake timers).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import type { EventLog } from '@tributary/shared';
import { simulatedTime, simulatorOn } from './simulated-time.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const { warnings } = simulatedTime();

describe('the simulator over a long run', () => {
  it('keeps nothing of the transactions and labels that have left', async () => {
    let published = 0;
    // Keeps nothing either: what stays in memory is the simulator's.
    const eventLog = { publish: async (_topic: string, records: unknown[]) => void (published += records.length) } as unknown as EventLog;
    const simulator = simulatorOn(eventLog, warnings, { ratePerSecond: 500, meanLabelDelayMs: 1 });
    const heapAfter = async (ms: number) => {
      await vi.advanceTimersByTimeAsync(ms);
      gc();
      return { heap: process.memoryUsage().heapUsed, transactions: simulator.stats.transactions };
    };
    await heapAfter(2_000);
    const start = await heapAfter(1_000);
    const end = await heapAfter(12_000);
    const stopped = simulator.stop();
    await vi.advanceTimersByTimeAsync(1_000);
    await stopped;
    const transactions = end.transactions - start.transactions;
    expect(transactions).toBeGreaterThanOrEqual(6_000);
    expect(published).toBe(simulator.stats.transactions + simulator.stats.labels);
    expect(warnings).toEqual([]);
    // ~300 bytes per transaction here when each was kept (~1,800 with its prediction request); ~7 when none is.
    expect((end.heap - start.heap) / transactions).toBeLessThan(100);
  });
});
