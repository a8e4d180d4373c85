/** The monitor's join store and model thresholds, from the configuration. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '@tributary/shared';
import { MemoryJoinStore, RedisJoinStore, type JoinStore } from './join-store.js';

/** A joined marker is kept one more window, so that replays and late duplicates are recognised. */
export function createJoinStore(config: Config): JoinStore {
  return config.REDIS_URL
    ? new RedisJoinStore(config.REDIS_URL, config.REDIS_KEY_PREFIX, config.MONITOR_JOIN_WINDOW)
    : new MemoryJoinStore(config.MONITOR_JOIN_WINDOW);
}

/** Each version's threshold from its manifest in the model registry (0.5 when unreadable), read once. */
export function thresholdsFrom(registryDir: string): (model: string, version: string) => number {
  const known = new Map<string, number>();
  return (model, version) => {
    const id = `${model}/${version}`;
    let threshold = known.get(id);
    if (threshold === undefined) {
      try {
        const manifest = JSON.parse(readFileSync(join(registryDir, model, version, 'manifest.json'), 'utf8')) as { threshold?: unknown };
        threshold = typeof manifest.threshold === 'number' && manifest.threshold >= 0 && manifest.threshold <= 1 ? manifest.threshold : 0.5;
      } catch {
        threshold = 0.5;
      }
      known.set(id, threshold);
    }
    return threshold;
  };
}

/** The join and quality settings of `startMonitor`, from the configuration. */
export function monitorSettings(config: Config) {
  return {
    joins: createJoinStore(config),
    joinWindowMs: config.MONITOR_JOIN_WINDOW,
    thresholdOf: thresholdsFrom(config.MODEL_REGISTRY_DIR),
    maxSeries: config.MONITOR_MAX_SERIES,
  };
}
