/**
 * A simulator in simulated time (fake timers) for a test file: `simulatedTime()` installs the
 * fake clock around each test and gives the warnings the simulator says; `simulatorOn` starts
 * one at RATE transactions/s that says them there.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import type { EventLog, Logger } from '@tributary/shared';
import { startSimulator, type SimulatorOptions } from '../src/simulator.js';

export const RATE = 20;

export function simulatedTime(): { warnings: string[] } {
  const warnings: string[] = [];
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'Date', 'performance'] });
    warnings.length = 0;
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });
  return { warnings };
}

export function simulatorOn(eventLog: EventLog, warnings: string[], options: Partial<SimulatorOptions>) {
  return startSimulator({
    eventLog,
    topics: { transactions: 'transactions', labels: 'labels' },
    inferenceUrl: null,
    ratePerSecond: RATE,
    fraudRate: 0.03,
    meanLabelDelayMs: 3_600_000,
    users: 10,
    seed: 1,
    logger: { warn: (_fields: object, message: string) => warnings.push(message) } as unknown as Logger,
    ...options,
  });
}
