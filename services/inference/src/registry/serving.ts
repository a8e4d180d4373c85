/**
 * The model version a replica serves, following the routing: every `pollMs` the replica
 * reads the routing and, when the champion changed, loads the new version beside the old
 * one and swaps them once it scores; requests in flight finish on the version they
 * started with. A version that fails to load is reported and counted, and the old one
 * keeps serving (Triton's rule); it is tried again only when the routing changes again.
 */
import { planFeatures, type FeatureCatalog, type FeaturePlan, type Logger } from '@tributary/shared';
import { startModel, type LoadedModel, type ScoringOptions } from '../model.js';
import type { ModelRegistry } from './registry.js';

export interface ServedModel {
  model: LoadedModel;
  plan: FeaturePlan;
}

export interface ServingStats {
  serving(name: string, version: string): void;
  reloaded(outcome: 'loaded' | 'rejected'): void;
}

export interface ServingOptions {
  registry: ModelRegistry;
  name: string;
  catalog: FeatureCatalog;
  scoring: ScoringOptions;
  pollMs: number;
  logger: Logger;
  stats: ServingStats;
}

export class ModelServing {
  private served: ServedModel;
  private failedRevision = 0;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private closed = false;
  private routingErrors = 0;

  private constructor(
    private readonly options: ServingOptions,
    served: ServedModel,
    private revision: number,
  ) {
    this.served = served;
    options.stats.serving(options.name, served.model.manifest.version);
  }

  /** Loads the routed champion; fails when it cannot be served. */
  static async start(options: ServingOptions): Promise<ModelServing> {
    const routing = await options.registry.ensureRouting(options.name, 'inference');
    const served = await load(options, routing.champion);
    const serving = new ModelServing(options, served, routing.revision);
    serving.schedule();
    return serving;
  }

  get current(): ServedModel {
    return this.served;
  }

  /** Reads the routing once and follows it (the poll does this every `pollMs`). */
  refresh(): Promise<void> {
    this.reloading ??= this.follow().finally(() => {
      this.reloading = null;
    });
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
      this.routingErrors = 0;
    } catch (error) {
      if (this.routingErrors++ % 60 === 0)
        logger.warn({ err: error }, `model routing of ${name} unreadable; serving version ${this.served.model.manifest.version}`);
      return;
    }
    if (!routing || routing.revision === this.revision || routing.revision === this.failedRevision) return;
    if (routing.champion === this.served.model.manifest.version) {
      this.revision = routing.revision;
      return;
    }
    try {
      const next = await load(this.options, routing.champion);
      if (this.closed) {
        await next.model.close();
        return;
      }
      const old = this.served;
      this.served = next;
      this.revision = routing.revision;
      stats.reloaded('loaded');
      stats.serving(name, routing.champion);
      logger.info(
        `model ${name}: now serving version ${routing.champion} (revision ${routing.revision}, by ${routing.updated_by}: ${routing.reason})`,
      );
      void old.model.close();
    } catch (error) {
      this.failedRevision = routing.revision;
      stats.reloaded('rejected');
      logger.error(
        { err: error },
        `model ${name}: version ${routing.champion} cannot be served (${(error as Error).message}); still serving version ${this.served.model.manifest.version}`,
      );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.reloading;
    await this.served.model.close();
  }
}

async function load(options: ServingOptions, version: string): Promise<ServedModel> {
  const read = await options.registry.version(options.name, version);
  const plan = planFeatures(read.manifest.features, options.catalog, read.manifest.defaults ?? {});
  const model = await startModel(read, options.scoring);
  return { model, plan };
}
