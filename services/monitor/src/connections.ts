/** The monitor's join store and model thresholds, from the configuration. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, ReferenceProfile } from '@tributary/shared';
import { MemoryJoinStore, RedisJoinStore, type JoinStore } from './join-store.js';

/** A joined marker is kept one more window, so that replays and late duplicates are recognised. */
export function createJoinStore(config: Config): JoinStore {
  return config.REDIS_URL
    ? new RedisJoinStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX, config.MONITOR_JOIN_WINDOW)
    : new MemoryJoinStore(config.MONITOR_JOIN_WINDOW);
}

interface VersionInfo {
  threshold: number;
  profile: ReferenceProfile | null;
}

/**
 * Each version's threshold (0.5 when unknown) and reference profile (null when absent) from
 * its manifest in the model registry, read once per version.
 */
export function manifestsFrom(registryDir: string): {
  thresholdOf(model: string, version: string): number;
  profileOf(model: string, version: string): ReferenceProfile | null;
} {
  const known = new Map<string, VersionInfo>();
  const info = (model: string, version: string): VersionInfo => {
    const id = `${model}/${version}`;
    let found = known.get(id);
    if (found === undefined) {
      found = { threshold: 0.5, profile: null };
      try {
        if (/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(model) && /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(version)) {
          const manifest = JSON.parse(readFileSync(join(registryDir, model, version, 'manifest.json'), 'utf8')) as {
            threshold?: unknown;
            profile?: ReferenceProfile;
          };
          if (typeof manifest.threshold === 'number' && manifest.threshold >= 0 && manifest.threshold <= 1)
            found.threshold = manifest.threshold;
          if (manifest.profile?.version === 1 && typeof manifest.profile.features === 'object') found.profile = manifest.profile;
        }
      } catch {
        // an unknown version: the defaults
      }
      known.set(id, found);
    }
    return found;
  };
  return { thresholdOf: (model, version) => info(model, version).threshold, profileOf: (model, version) => info(model, version).profile };
}

/** The join and quality settings of `startMonitor`, from the configuration. */
export function monitorSettings(config: Config) {
  return {
    joins: createJoinStore(config),
    joinWindowMs: config.MONITOR_JOIN_WINDOW,
    ...manifestsFrom(config.MODEL_REGISTRY_DIR),
    maxSeries: config.MONITOR_MAX_SERIES,
    sliceFields: config.MONITOR_SLICE_FIELDS.split(',')
      .map((f) => f.trim())
      .filter(Boolean),
    maxSlices: config.MONITOR_MAX_SLICES,
  };
}
