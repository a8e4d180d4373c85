import { describe, expect, it } from 'vitest';
import { loadConfig } from '@tributary/shared';
import { simulatedJoinWindows } from '../src/join-windows.js';

const MIN = 60_000;
const windows = (env: Record<string, string>) => {
  const config = simulatedJoinWindows(loadConfig(env), env);
  return [config.LABEL_JOIN_WINDOW / MIN, config.MONITOR_JOIN_WINDOW / MIN];
};

describe("the embedded simulator's join windows", () => {
  it('are max(10 min, 20 label delays) on the embedded stores with the simulator, so memory levels off', () => {
    expect(windows({})).toEqual([10, 10]);
    expect(windows({ SIMULATOR_LABEL_DELAY: '2m' })).toEqual([40, 40]);
    // Never beyond the defaults (8 and 7 days).
    expect(windows({ SIMULATOR_LABEL_DELAY: '1d' })).toEqual([8 * 1440, 7 * 1440]);
  });

  it('are as set, or the defaults, with Redis, without the simulator, or when given', () => {
    expect(windows({ REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual([8 * 1440, 7 * 1440]);
    expect(windows({ SIMULATOR: 'false' })).toEqual([8 * 1440, 7 * 1440]);
    expect(windows({ LABEL_JOIN_WINDOW: '2d' })).toEqual([2 * 1440, 10]);
    expect(windows({ MONITOR_JOIN_WINDOW: '7d' })).toEqual([10, 7 * 1440]);
  });
});
