/** The monitor's join store and model thresholds, from the configuration. */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { endRollout, RedisRewardStore, RedisRoutingStore, type RewardStore, type RoutingStore } from '@tributary/inference/routing';
import {
  checkProfile,
  ConfigError,
  type Config,
  type Dependency,
  type EventLog,
  type Logger,
  type ReferenceProfile,
} from '@tributary/shared';
import { MemoryJoinStore, RedisJoinStore, type JoinStore } from './join-store.js';
import type { RolloutControl } from './rollout-guard.js';

/** Where the monitor runs: `embedded` in one process with the other services (`npm start`, the retrain scenario). */
export interface MonitorSettingsOptions {
  logger?: Logger;
  embedded?: boolean;
}

/**
 * Redis when REDIS_URL is set, else memory. Memory with KAFKA_BROKERS set would lose every
 * pending join at a restart (the offsets of its sides are committed to Kafka): refused with a
 * configuration error, except embedded, where it is logged as a warning (a demo on a broker).
 * A joined marker is kept one more window, so that replays and late duplicates are recognised;
 * a prediction a label joined, for the replay horizon (to answer the label's record again).
 */
export function createJoinStore(config: Config, options: MonitorSettingsOptions = {}): JoinStore {
  if (config.REDIS_URL) {
    return new RedisJoinStore(
      { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER },
      config.REDIS_KEY_PREFIX,
      config.MONITOR_JOIN_WINDOW,
      config.MONITOR_JOIN_REPLAY_HORIZON,
    );
  }
  if (config.KAFKA_BROKERS) {
    const problem =
      'KAFKA_BROKERS is set but REDIS_URL is not: the label join would keep the predictions and labels waiting for each other in memory while their offsets are committed to Kafka, so every pending join would be lost at a restart';
    if (!options.embedded) throw new ConfigError(`invalid configuration:\n  ${problem}; set REDIS_URL for the monitor's join store`);
    options.logger?.warn(`${problem} (allowed in one process for a demo; set REDIS_URL to keep them)`);
  }
  return new MemoryJoinStore(config.MONITOR_JOIN_WINDOW, config.MONITOR_JOIN_REPLAY_HORIZON);
}

/** The stores the inference replicas read the rollouts from: the monitor's canary rule and bandit rewards write there. */
export interface RolloutStores {
  routes: RoutingStore;
  rewards: RewardStore;
}

/**
 * What the monitor's `/readyz` reports: the event log (Kafka's admin request costs more than a
 * Redis PING: asked at most every 5 s), the join store, where the pending joins wait, and when
 * the monitor takes part in rollouts, the routing store (the canary rule reads and ends
 * canaries there) and the reward store (the bandits' rewards are added there).
 */
export function monitorDependencies(
  eventLog: EventLog,
  joins: JoinStore,
  rollouts?: { stores: RolloutStores },
): Record<string, Dependency> {
  return {
    event_log: { ping: () => eventLog.ping(), reuseMs: 5_000 },
    join_store: { ping: () => joins.ping() },
    ...(rollouts && {
      routing_store: { ping: () => rollouts.stores.routes.ping() },
      reward_store: { ping: () => rollouts.stores.rewards.ping() },
    }),
  };
}

interface VersionInfo {
  threshold: number;
  profile: ReferenceProfile | null;
  /** When the manifest could not be read: when to try again (a version may be served before its manifest is in place). */
  retryAt?: number;
}

/** Versions whose manifest is kept read at most (the first read is forgotten first). */
const MAX_VERSIONS = 1024;
/** How long the defaults stand for a version whose manifest could not be read before it is read again. */
const MANIFEST_RETRY_MS = 30_000;

/**
 * Refuses a model registry directory that does not exist or cannot be read: the monitor would
 * monitor every version with the defaults (threshold 0.5, no reference profile: no drift)
 * without a word.
 */
export function checkRegistryDir(dir: string): void {
  let problem: string | null = null;
  try {
    if (!statSync(dir).isDirectory()) problem = 'not a directory';
    else accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problem = code === 'ENOENT' ? 'no such directory' : code === 'EACCES' ? 'not readable' : (error as Error).message;
  }
  if (problem !== null) {
    throw new ConfigError(
      `invalid configuration:\n  MODEL_REGISTRY_DIR=${JSON.stringify(dir)}: ${problem} (the monitor reads each version's threshold and reference profile from its manifest there)`,
    );
  }
}

/**
 * Each version's threshold (0.5 when unknown) and reference profile (null when absent) from
 * its manifest in the model registry, read once per version while it is among the last
 * MAX_VERSIONS read (a stream of odd version names must not grow the memory). A version without
 * a readable manifest is monitored with the defaults and logged as a warning; its manifest is
 * read again MANIFEST_RETRY_MS later (warning again if it still fails), as a version's first
 * predictions may come before its manifest is in place. A name that would leave its folder is
 * never read. A profile that fails its check (checkProfile) is logged as an error and the version
 * is monitored without one (no drift), as the drift windows would throw on it.
 */
export function manifestsFrom(
  registryDir: string,
  logger?: Logger,
  clock: () => number = Date.now,
): {
  thresholdOf(model: string, version: string): number;
  profileOf(model: string, version: string): ReferenceProfile | null;
} {
  const known = new Map<string, VersionInfo>();
  const info = (model: string, version: string): VersionInfo => {
    const id = `${model}/${version}`;
    let found = known.get(id);
    if (found !== undefined && found.retryAt !== undefined && clock() >= found.retryAt) {
      known.delete(id);
      found = undefined;
    }
    if (found === undefined) {
      found = { threshold: 0.5, profile: null };
      let manifest: { threshold?: unknown; profile?: unknown } | null = null;
      try {
        // A name that would leave the version's folder is never read.
        if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(model) || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(version)) {
          throw new Error('not the name of a folder of the registry');
        }
        found.retryAt = clock() + MANIFEST_RETRY_MS;
        const parsed: unknown = JSON.parse(readFileSync(join(registryDir, model, version, 'manifest.json'), 'utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('manifest.json is not a JSON object');
        manifest = parsed;
      } catch (error) {
        // The reason is in the message; no stack: the same read fails the same way at every retry.
        logger?.warn(
          { model, version, registry: registryDir },
          `no readable manifest for ${model} ${version} in ${registryDir} (${(error as Error).message}): the version is monitored with threshold 0.5 and without drift${found.retryAt === undefined ? '' : ` until its manifest is read (tried again in ${MANIFEST_RETRY_MS / 1000} s)`}`,
        );
      }
      if (manifest !== null) {
        delete found.retryAt;
        if (typeof manifest.threshold === 'number' && manifest.threshold >= 0 && manifest.threshold <= 1)
          found.threshold = manifest.threshold;
        if (manifest.profile !== undefined) {
          const checked = checkProfile(manifest.profile);
          if (checked.ok) found.profile = checked.profile;
          else
            logger?.error(
              { model, version, problem: checked.error },
              `the reference profile in the manifest of ${model} ${version} is invalid (${checked.error}): the version is monitored without drift`,
            );
        }
      }
      if (known.size >= MAX_VERSIONS) known.delete(known.keys().next().value!);
      known.set(id, found);
    }
    return found;
  };
  return { thresholdOf: (model, version) => info(model, version).threshold, profileOf: (model, version) => info(model, version).profile };
}

/** The canary rule's view of the routing: the canary in force, and ending it. */
export function rolloutControl(routes: RoutingStore): RolloutControl {
  return {
    async canaryOf(model) {
      const routing = await routes.get(model);
      return routing?.policy?.kind === 'canary'
        ? { champion: routing.champion, canary: routing.policy.version, revision: routing.revision }
        : null;
    },
    async endCanary(model, judged, reason) {
      return (await endRollout(routes, model, 'monitor', reason, 'auto_rollback', judged.revision)) !== null;
    },
  };
}

/**
 * The monitor's part in rollouts (bandit rewards, the canary rule) on the stores the
 * inference replicas read: `routes` and `rewards`, or Redis's when REDIS_URL is set (a
 * monitor on its own without Redis shares no routing with anyone: none then).
 */
export function rolloutSettings(config: Config, shared?: RolloutStores) {
  const own =
    shared === undefined && config.REDIS_URL
      ? {
          routes: new RedisRoutingStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX),
          rewards: new RedisRewardStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX),
        }
      : undefined;
  const stores = shared ?? own;
  if (!stores) return undefined;
  return {
    stores,
    addReward: (model: string, version: string, trials: number, reward: number) => stores.rewards.add(model, version, trials, reward),
    canary: {
      rule: {
        metric: config.MONITOR_CANARY_METRIC,
        margin: config.MONITOR_CANARY_MARGIN,
        confidence: config.MONITOR_CANARY_CONFIDENCE,
        minPerClass: config.MONITOR_CANARY_MIN_PER_CLASS,
      },
      control: rolloutControl(stores.routes),
    },
    close: async () => {
      if (own) await Promise.all([own.routes.close(), own.rewards.close()]);
    },
  };
}

/** The join and quality settings of `startMonitor`, from the configuration. */
export function monitorSettings(config: Config, shared?: RolloutStores, options: MonitorSettingsOptions = {}) {
  // Before any connection is opened.
  checkRegistryDir(config.MODEL_REGISTRY_DIR);
  return {
    rollouts: rolloutSettings(config, shared),
    joins: createJoinStore(config, options),
    joinWindowMs: config.MONITOR_JOIN_WINDOW,
    ...manifestsFrom(config.MODEL_REGISTRY_DIR, options.logger),
    maxSeries: config.MONITOR_MAX_SERIES,
    sliceFields: config.MONITOR_SLICE_FIELDS,
    maxSlices: config.MONITOR_MAX_SLICES,
  };
}
