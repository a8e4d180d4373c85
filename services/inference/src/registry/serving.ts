/**
 * The model versions a replica serves, following the routing: every `pollMs` the replica
 * reads the routing and, when it changed, loads the versions it names (champion, rollout
 * versions, shadows) beside the old ones and swaps the whole set once they all score;
 * requests in flight finish on the set they started with (a version no longer routed is
 * closed once the last of them is done). If any version fails to load,
 * the change is reported and counted and the old set keeps serving (Triton's rule); it is
 * tried again only when the routing changes again.
 */
import { planModelFeatures, TributaryError, type FeatureCatalog, type FeaturePlan, type Logger } from '@tributary/shared';
import { startModel, type LoadedModel, type ModelVersion, type ScoringOptions } from '../model.js';
import { describeRollout, type ModelRegistry } from './registry.js';
import type { AuditEntry, Routing } from './routing.js';
import type { RewardStore } from './rewards.js';
import { policyVersions, type Rewards, type RolloutPolicy } from './rollout.js';

export interface ServedModel {
  model: LoadedModel;
  plan: FeaturePlan;
  /** Requests that hold a snapshot naming this version (see ModelServing.acquire). */
  users: number;
  /** No longer routed: closed as soon as no request uses it. */
  retired: boolean;
}

/** Everything a replica serves for its model, as one snapshot: a request uses one snapshot throughout. */
export interface RoutedModels {
  champion: ServedModel;
  policy: RolloutPolicy;
  /** Every loaded version: the champion, the policy's versions and the shadows. */
  versions: Map<string, ServedModel>;
  shadows: ServedModel[];
  /** Reward feedback of the policy's versions (bandit). */
  rewards: Rewards;
}

export interface ServingStats {
  serving(name: string, version: string): void;
  reloaded(outcome: 'loaded' | 'rejected'): void;
  /** Whether the replica refuses the routing the store holds (serving an older one), as it changes. */
  refusing(refused: boolean): void;
}

export interface ServingOptions {
  registry: ModelRegistry;
  name: string;
  catalog: FeatureCatalog;
  scoring: ScoringOptions;
  pollMs: number;
  logger: Logger;
  stats: ServingStats;
  /** Where bandit rewards are read (absent: no rewards, every version equally likely). */
  rewards?: RewardStore;
}

const CHAMPION_ONLY: RolloutPolicy = { kind: 'champion' };

/**
 * What a routing routes, with its revision: two routings with the same revision and different
 * routes are two (after the store lost the routing, two replicas may each have written one back
 * as the same revision, or one as the revision another replica had followed before).
 */
function routingKey(routing: Routing): string {
  return JSON.stringify([routing.revision, routing.champion, routing.policy ?? CHAMPION_ONLY, routing.shadows ?? []]);
}

export class ModelServing {
  private served: RoutedModels;
  /** The routing that could not be served (`routingKey`): not tried again until it changes. */
  private failed: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  /** A refresh was asked for while a read was under way: read again after it. */
  private again = false;
  private closed = false;
  private routingErrors = 0;
  /** The last routing read from the store (null: none yet), and the highest revision ever read. */
  private lastRouting: Routing | null = null;
  private highestRevision = 0;
  /** A routing was read (at start or since): until then the champion is a guess, the highest registered version. */
  private routingRead = false;
  /** Versions the registry read and checked while choosing a first routing: started from there at start, not read again. */
  private checked = new Map<string, ModelVersion>();

  private constructor(
    private readonly options: ServingOptions,
    served: RoutedModels,
    /** The routing served (`routingKey`); null before one is followed. */
    private followed: string | null,
  ) {
    this.served = served;
    options.stats.serving(options.name, served.champion.model.manifest.version);
  }

  /**
   * Loads the routed champion (and the versions its rollout names); fails when the champion cannot
   * be served. While the routing store does not answer, it starts on the champion of the routing
   * recorded in the registry directory (see ModelRegistry.record), or the highest registered
   * version without one, and follows the routing once it can be read (the replica is not ready meanwhile:
   * `followsRouting` is false).
   */
  static async start(options: ServingOptions): Promise<ModelServing> {
    let routing: Routing | null = null;
    let championVersion: string;
    const checked = new Map<string, ModelVersion>();
    try {
      routing = await options.registry.ensureRouting(options.name, 'inference', checked);
      championVersion = routing.champion;
    } catch (error) {
      if (!(error instanceof TributaryError && error.code === 'ROUTING_STORE_UNAVAILABLE')) throw error;
      const recorded = (await options.registry.recorded(options.name))?.champion;
      const newest = (await options.registry.versions(options.name)).at(-1)?.version;
      const chosen = recorded !== undefined && (await options.registry.has(options.name, recorded)) ? recorded : newest;
      if (chosen === undefined) throw error;
      championVersion = chosen;
      options.logger.warn(
        { err: error },
        `model routing of ${options.name} unreadable at start; serving ${championVersion === recorded ? 'the champion of the routing recorded in the registry directory' : 'the highest registered version'}, ${championVersion}, until it can be read`,
      );
    }
    const champion = await load(options, championVersion, checked.get(championVersion));
    const served: RoutedModels = {
      champion,
      policy: CHAMPION_ONLY,
      versions: new Map([[championVersion, champion]]),
      shadows: [],
      rewards: {},
    };
    // The rollout's other versions: loaded like any later routing change (a failure keeps the
    // champion serving). Without a routing read, none followed: the first one read is followed.
    const serving = new ModelServing(options, served, !routing || routing.policy || routing.shadows?.length ? null : routingKey(routing));
    serving.routingRead = routing !== null;
    serving.checked = checked;
    await serving.refresh();
    serving.checked.clear();
    serving.schedule();
    return serving;
  }

  /** The champion. */
  get current(): ServedModel {
    return this.served.champion;
  }

  /**
   * Whether the replica serves what the routing says: false only while no routing could be read
   * since it started (it then serves the recorded champion or the highest registered version).
   */
  get followsRouting(): boolean {
    return this.routingRead;
  }

  /**
   * The current snapshot, held until `release`: a version the routing drops meanwhile keeps its
   * workers until the last request using it is done (a request awaits its features between
   * taking the snapshot and scoring, and shadows score after the answer).
   */
  acquire(): RoutedModels {
    const routed = this.served;
    for (const served of routed.versions.values()) served.users++;
    return routed;
  }

  release(routed: RoutedModels): void {
    for (const served of routed.versions.values()) {
      served.users--;
      if (served.retired && served.users === 0) void served.model.close();
    }
  }

  /**
   * Reads the routing and follows it (the poll does this every `pollMs`); resolves once a read
   * that started after this call is followed. A call while a read is under way (which may have
   * read the routing before a change this caller just made) runs another once it is done.
   */
  refresh(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.again = false;
          await this.follow();
        } while (this.again && !this.closed);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule());
    }, this.options.pollMs);
    this.timer.unref();
  }

  private async follow(): Promise<void> {
    const { registry, name, logger, stats } = this.options;
    let routing;
    try {
      routing = await registry.routing(name);
      // None stored. Before any routing was read (the store did not answer at start), this is
      // the first start: the registry's record of the last routing, or the highest registered
      // version. Once one was read, the key was lost
      // (a Redis restarted without persistence, flushed, evicting): the routing this replica
      // serves is written back, never a version nobody promoted.
      routing ??= this.lastRouting ? await this.restoreRouting(this.lastRouting) : await registry.ensureRouting(name, 'inference');
      this.routingErrors = 0;
      this.routingRead = true;
    } catch (error) {
      if (this.routingErrors++ % 60 === 0)
        logger.warn({ err: error }, `model routing of ${name} unreadable; serving version ${this.served.champion.model.manifest.version}`);
      return;
    }
    // Recorded beside the versions once per routing read (see ModelRegistry.record), not at every poll.
    if (routing.revision !== this.lastRouting?.revision) await registry.record(routing);
    this.lastRouting = routing;
    this.highestRevision = Math.max(this.highestRevision, routing.revision);
    await this.followRewards(routing);
    const key = routingKey(routing);
    if (key === this.followed || key === this.failed) return;
    const policy = routing.policy ?? CHAMPION_ONLY;
    const shadows = routing.shadows ?? [];
    const wanted = [...new Set([routing.champion, ...policyVersions(policy), ...shadows])];
    const old = this.served;
    const loaded: ServedModel[] = [];
    try {
      const versions = new Map<string, ServedModel>();
      for (const version of wanted) {
        let served = old.versions.get(version);
        if (!served) {
          served = await load(this.options, version, this.checked.get(version));
          loaded.push(served);
        }
        versions.set(version, served);
      }
      if (this.closed) throw new Error('closed');
      this.served = {
        champion: versions.get(routing.champion)!,
        policy,
        versions,
        shadows: shadows.map((v) => versions.get(v)!),
        rewards: old.rewards,
      };
      this.followed = key;
      stats.refusing(false);
      for (const [version, served] of old.versions) {
        if (versions.has(version)) continue;
        served.retired = true;
        if (served.users === 0) void served.model.close();
      }
      if (old.champion !== this.served.champion || loaded.length > 0) {
        stats.reloaded('loaded');
        stats.serving(name, routing.champion);
        logger.info(
          `model ${name}: now serving ${describeRollout(routing)} (revision ${routing.revision}, by ${routing.updated_by}: ${routing.reason})`,
        );
      }
    } catch (error) {
      for (const served of loaded) void served.model.close();
      if (this.closed) return;
      this.failed = key;
      stats.reloaded('rejected');
      stats.refusing(true);
      logger.error(
        { err: error },
        `model ${name}: ${describeRollout(routing)} cannot be served (${(error as Error).message}); still serving ${describeRollout({
          ...routing,
          champion: old.champion.model.manifest.version,
          policy: old.policy,
          shadows: old.shadows.map((s) => s.model.manifest.version),
        })}`,
      );
    }
  }

  /**
   * Writes back the last routing read, or the registry's record of the routing when it is newer (a
   * registry directory the replicas share records every change, one this replica had not polled
   * yet included): what was routed, not what this replica serves (a version it could not load
   * serves elsewhere). Its revision is above any read or recorded, and a replica that followed
   * another routing of that revision follows this one too (`routingKey`), so every replica agrees
   * on one; when another replica wrote one first, that one is followed.
   */
  private async restoreRouting(last: Routing): Promise<Routing> {
    const { registry, name, logger } = this.options;
    const recorded = await registry.recorded(name).catch(() => null);
    const base = recorded && recorded.revision > last.revision ? recorded : last;
    const restored: Routing = {
      model: name,
      champion: base.champion,
      previous: base.previous,
      ...(base.policy ? { policy: base.policy } : {}),
      ...(base.shadows ? { shadows: base.shadows } : {}),
      revision: Math.max(this.highestRevision, base.revision) + 1,
      updated_at: new Date().toISOString(),
      updated_by: 'inference',
      reason: `routing lost from the store (last read: revision ${last.revision}); restored from ${base === last ? 'the last routing this replica read' : `the registry's record (revision ${base.revision})`}`,
    };
    const audit: AuditEntry = {
      at: restored.updated_at,
      by: restored.updated_by,
      action: 'restore',
      reason: restored.reason,
      from: null,
      to: restored.champion,
      revision: restored.revision,
    };
    const result = await registry.routes.update(restored, 0, audit);
    const now = result.ok ? result.routing : result.current;
    if (!now) throw new Error(`cannot restore the routing of ${name}`);
    logger.error(
      `model ${name}: the routing store had lost its routing (last read: revision ${last.revision}); ${result.ok ? 'restored' : 'another replica restored'} ${describeRollout(now)} as revision ${now.revision}`,
    );
    return now;
  }

  /** Reads the bandit's rewards when the routing read has a bandit: the one served, or one it is about to serve. */
  private async followRewards(routing: Routing): Promise<void> {
    if (routing.policy?.kind !== 'bandit' || !this.options.rewards) return;
    try {
      this.served = { ...this.served, rewards: await this.options.rewards.get(this.options.name) };
    } catch (error) {
      this.options.logger.warn({ err: error }, `bandit rewards of ${this.options.name} unreadable; using the last ones read`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.reloading;
    await Promise.all([...this.served.versions.values()].map((served) => served.model.close()));
  }
}

/** Starts a version: `checked` when the registry has just read and checked it, else read (and checked) now. */
async function load(options: ServingOptions, version: string, checked?: ModelVersion): Promise<ServedModel> {
  const read = checked ?? (await options.registry.version(options.name, version));
  const plan = planModelFeatures(read.manifest, options.catalog);
  const model = await startModel(read, options.scoring);
  const workers = model.workerThreads === 0 ? 'no worker thread needed' : `larger ones in ${model.workerThreads} worker thread(s)`;
  options.logger.info(
    `model ${options.name} version ${version}: batches of up to ${model.inlineMaxRows} rows scored on the event loop (MODEL_INLINE_MAX_US), ${workers}`,
  );
  return { model, plan, users: 0, retired: false };
}
