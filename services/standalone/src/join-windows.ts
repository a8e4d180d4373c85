import type { Config } from '@tributary/shared';

/** The shortest join window the embedded simulator gets. */
const MIN_SIMULATED_WINDOW_MS = 10 * 60_000;

/**
 * On the embedded default, the join stores are the process's memory, and each request joined
 * is remembered for its join window (the label join's 8 days, so that a label sent again is
 * not counted twice): `npm start` grew by ~1-2 KB per transaction for a week, some GB a day.
 * The simulator's labels all come within minutes (exponential delays of mean
 * SIMULATOR_LABEL_DELAY: one in 5e8 beyond 20 means), so with the simulator on, no Redis, and
 * no window set, both windows are max(10 min, 20 × SIMULATOR_LABEL_DELAY), at most their
 * defaults; memory then levels off once the process has run that long.
 */
export function simulatedJoinWindows(config: Config, env: Record<string, string | undefined>): Config {
  if (config.REDIS_URL || !config.SIMULATOR) return config;
  const windowMs = Math.max(MIN_SIMULATED_WINDOW_MS, 20 * config.SIMULATOR_LABEL_DELAY);
  const unset = (name: string) => env[name] === undefined;
  return {
    ...config,
    LABEL_JOIN_WINDOW: unset('LABEL_JOIN_WINDOW') ? Math.min(windowMs, config.LABEL_JOIN_WINDOW) : config.LABEL_JOIN_WINDOW,
    MONITOR_JOIN_WINDOW: unset('MONITOR_JOIN_WINDOW') ? Math.min(windowMs, config.MONITOR_JOIN_WINDOW) : config.MONITOR_JOIN_WINDOW,
  };
}
