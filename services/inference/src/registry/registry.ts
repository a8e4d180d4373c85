/**
 * The model registry: versions in a directory (`<root>/<model>/<version>/manifest.json` and
 * the ONNX file), the serving routing in a RoutingStore. Registering checks a version fully
 * (manifest, hash, the model against its manifest, the features it needs) before it is
 * written; promoting checks it again before any replica is told to serve it.
 */
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkProfile, TributaryError } from '@tributary/shared';
import { checkHash, inspectModel, ModelLoadError, readModelVersion, SAFE_NAME, type ModelManifest, type ModelVersion } from '../model.js';
import { checkPolicy, policyVersions, type RolloutPolicy } from './rollout.js';
import { describeRollout, type AuditEntry, type Routing, type RoutingStore } from './routing.js';

export { describeRollout };

/** Earlier champions remembered for rollback. */
const PREVIOUS_KEPT = 20;
/** How often a change waiting for a lost routing to be written back reads the store. */
const RESTORE_CHECK_MS = 100;
const SAFE = new RegExp(SAFE_NAME);
/** The last routing written or followed, beside a model's versions (see `record`). */
const RECORD_FILE = 'routing.json';
/** Each version's manifest, beside its ONNX file. */
const MANIFEST_FILE = 'manifest.json';

export interface VersionSummary {
  version: string;
  created_at: string;
  features: number;
  sha256: string;
  training: Record<string, unknown>;
}

const byVersion = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

export interface RegistryOptions {
  /**
   * Set for changes made away from the serving replicas (the command line). A change that finds
   * no routing stored may find one the store lost (a Redis restarted without persistence,
   * flushed, evicting) while replicas serve it; they write it back at their next routing poll
   * (audit `restore`). So the change waits up to `ms` for that and starts from the routing
   * written back, never from one initialised on the highest registered version; `notify` is told
   * why it waits. Absent (a replica's own registry: before a change the replica reads the routing
   * and writes back a lost one itself, see routes/admin.ts), no routing stored is a first start.
   */
  awaitRestore?: { ms: number; notify?: (message: string) => void };
  /** Told once when the routing record cannot be written (a read-only registry directory). */
  warn?: (message: string) => void;
}

export class ModelRegistry {
  constructor(
    readonly root: string,
    readonly routes: RoutingStore,
    /**
     * Further checks of a manifest (e.g. that the service can compute every feature); throws to
     * reject. It may return the entity keys the version reads (an A/B test's entity must be one).
     */
    private readonly check: (manifest: ModelManifest) => { entities: readonly string[] } | void = () => {},
    private readonly options: RegistryOptions = {},
  ) {}

  /** The last write of the routing record failed (reported once until a write succeeds again). */
  private recordFailing = false;

  private dir(model: string, version?: string): string {
    for (const part of [model, version]) {
      if (part !== undefined && !SAFE.test(part)) throw new TributaryError('BAD_REQUEST', `"${part}" is not a valid model name or version`);
    }
    return version === undefined ? join(this.root, model) : join(this.root, model, version);
  }

  /** The model's version folders (nothing in them read), in version order. */
  private async folders(model: string): Promise<string[]> {
    const entries = await readdir(this.dir(model), { withFileTypes: true }).catch(() => []);
    return entries
      .filter((entry) => entry.isDirectory() && SAFE.test(entry.name))
      .map((entry) => entry.name)
      .sort(byVersion);
  }

  async versions(model: string): Promise<VersionSummary[]> {
    return (await this.inventory(model)).versions;
  }

  /** Whether the registry holds anything of the model: a version folder (readable or not) or a routing. */
  async exists(model: string): Promise<boolean> {
    return (await this.folders(model)).length > 0 || (await this.routing(model)) !== null;
  }

  /**
   * The versions that can be read and those that cannot, each with the reason (a damaged copy,
   * a bad manifest). With `load`, each version is also loaded and checked as registering checks
   * it (the model against its manifest, the features it needs): slower, for the CLI's `list`.
   */
  async inventory(
    model: string,
    options: { load?: boolean } = {},
  ): Promise<{ versions: VersionSummary[]; damaged: { version: string; reason: string }[] }> {
    const summaries: VersionSummary[] = [];
    const damaged: { version: string; reason: string }[] = [];
    for (const folder of await this.folders(model)) {
      const version = await readModelVersion(join(this.dir(model), folder)).catch((error: Error) => {
        damaged.push({ version: folder, reason: error.message });
        return null;
      });
      if (!version) continue;
      const { manifest } = version;
      if (manifest.name !== model || manifest.version !== folder) {
        damaged.push({
          version: folder,
          reason: `the manifest names ${manifest.name} version ${manifest.version}, not ${model} version ${folder}`,
        });
        continue;
      }
      if (options.load) {
        const refused = await inspectModel(manifest, version.bytes)
          .then(() => this.check(manifest))
          .then(
            () => null,
            (error: Error) => error.message,
          );
        if (refused !== null) {
          damaged.push({ version: folder, reason: refused });
          continue;
        }
      }
      summaries.push({
        version: manifest.version,
        created_at: manifest.created_at,
        features: manifest.features.length,
        sha256: manifest.sha256,
        training: manifest.training,
      });
    }
    return { versions: summaries, damaged };
  }

  /** Whether `model` has a registered `version` (its manifest is there; nothing is read or checked). */
  async has(model: string, version: string): Promise<boolean> {
    return access(join(this.dir(model, version), MANIFEST_FILE)).then(
      () => true,
      () => false,
    );
  }

  /** Reads a version and checks its hash and manifest. */
  async version(model: string, version: string): Promise<ModelVersion> {
    try {
      const read = await readModelVersion(this.dir(model, version));
      if (read.manifest.name !== model || read.manifest.version !== version) {
        throw new ModelLoadError(
          `the manifest names ${read.manifest.name} version ${read.manifest.version}, not ${model} version ${version}`,
        );
      }
      return read;
    } catch (error) {
      if (error instanceof ModelLoadError && /cannot read .*manifest\.json: ENOENT/.test(error.message)) {
        throw new TributaryError('NOT_FOUND', `model ${model} has no version ${version}`);
      }
      throw rejected(error);
    }
  }

  /** Checks a version and adds it to the registry; it serves only once promoted. */
  async register(manifest: ModelManifest, bytes: Buffer): Promise<VersionSummary> {
    // Names the registry's own files take: a version named after the routing record could not be written (or would
    // shadow the record), a model file named after the manifest would be overwritten by it.
    if (manifest.version === RECORD_FILE) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `manifest.version "${RECORD_FILE}" is the name of the registry's routing record; name the version otherwise`,
        {
          field: 'manifest.version',
        },
      );
    }
    if (manifest.file === MANIFEST_FILE) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `manifest.file "${MANIFEST_FILE}" is the name of the version's manifest; name the ONNX file otherwise`,
        {
          field: 'manifest.file',
        },
      );
    }
    // The monitor compares live traffic with the profile: one it cannot read would leave the version without drift.
    if (manifest.profile !== undefined) {
      const profile = checkProfile(manifest.profile);
      if (!profile.ok) throw new TributaryError('VALIDATION_FAILED', `manifest.profile: ${profile.error}`, { field: 'manifest.profile' });
    }
    const target = this.dir(manifest.name, manifest.version);
    try {
      await checkHash(manifest, bytes);
      await inspectModel(manifest, bytes);
      this.check(manifest);
    } catch (error) {
      throw rejected(error);
    }
    await mkdir(this.dir(manifest.name), { recursive: true });
    const staging = await mkdtemp(join(this.dir(manifest.name), '.staging-'));
    try {
      await writeFile(join(staging, manifest.file), bytes);
      await writeFile(join(staging, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
      await rename(staging, target).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') {
          throw new TributaryError('CONFLICT', `model ${manifest.name} already has a version ${manifest.version}; versions are immutable`);
        }
        throw error;
      });
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return {
      version: manifest.version,
      created_at: manifest.created_at,
      features: manifest.features.length,
      sha256: manifest.sha256,
      training: manifest.training,
    };
  }

  routing(model: string): Promise<Routing | null> {
    return this.routes.get(model);
  }

  /**
   * The stored routing, or a first one: the routing recorded beside the versions (see `record`)
   * when it can serve, else the highest registered version. With
   * `awaitRestore`, a routing the store lost is awaited instead (see RegistryOptions).
   * The versions read and checked to choose a first routing are added to `checked`, if given:
   * a replica starts them from there instead of reading and hashing their files again.
   */
  async ensureRouting(model: string, by: string, checked?: Map<string, ModelVersion>): Promise<Routing> {
    const existing = await this.storedOrRestored(model);
    if (existing) return existing;
    const recorded = await this.fromRecord(model, by, checked);
    const routing =
      recorded ?? this.next(null, model, await this.newestServable(model, checked), [], by, 'first start: the highest registered version');
    const result = await this.routes.update(routing, 0, this.entry(routing, recorded ? 'restore' : 'init', null));
    if (result.ok) {
      await this.record(result.routing);
      return result.routing;
    }
    if (result.current) return result.current; // another replica initialised it first
    throw new Error(`cannot initialise the routing of ${model}`);
  }

  /** The highest version that can serve (a copy whose model does not load is passed over). */
  private async newestServable(model: string, checked?: Map<string, ModelVersion>): Promise<string> {
    for (const version of (await this.folders(model)).reverse()) {
      const servable = await this.checkServable(model, version, checked).then(
        () => true,
        () => false,
      );
      if (servable) return version;
    }
    throw new TributaryError('NOT_FOUND', `model ${model} has no valid version in ${this.dir(model)}`);
  }

  async promote(model: string, version: string, by: string, reason: string): Promise<Routing> {
    const current = await this.ensureRouting(model, by);
    if (current.champion === version) throw new TributaryError('CONFLICT', `version ${version} of ${model} is already the champion`);
    await this.checkServable(model, version);
    const previous = [current.champion, ...current.previous.filter((v) => v !== version)].slice(0, PREVIOUS_KEPT);
    return this.store(current, this.next(current, model, version, previous, by, reason), 'promote');
  }

  /**
   * Sets how requests are shared between the champion and other versions, and which
   * versions run in shadow. Every version named must be registered and servable. Without
   * `shadows` the current ones stay, but those the new policy routes requests to.
   */
  async rollout(
    model: string,
    policy: RolloutPolicy,
    shadows: string[] | undefined,
    by: string,
    reason: string,
    action: 'rollout' | 'auto_rollback' = 'rollout',
  ): Promise<Routing> {
    const current = await this.ensureRouting(model, by);
    const routed = policyVersions(policy);
    shadows ??= (current.shadows ?? []).filter((version) => !routed.includes(version) && version !== current.champion);
    checkPolicy(policy, current.champion, shadows);
    const checked = new Map<string, { entities: readonly string[] } | void>();
    for (const version of new Set([...policyVersions(policy), ...shadows])) checked.set(version, await this.checkServable(model, version));
    // A/B stickiness hashes this entity key of the request: every arm must read it. Without one
    // named, the first of the champion's entity keys that every arm reads (then the arms' own),
    // stored with the policy, so that a later champion does not move the requests between arms.
    if (policy.kind === 'ab' && policy.entity === undefined) {
      const read = policy.arms.map(({ version }) => checked.get(version)?.entities);
      const champion = checked.has(current.champion) ? checked.get(current.champion) : await this.checkServable(model, current.champion);
      const candidates = [...(champion?.entities ?? []), ...read.flatMap((entities) => entities ?? [])];
      const entity = candidates.find((key) => read.every((entities) => !entities || entities.includes(key)));
      if (entity === undefined && read.some((entities) => entities)) {
        throw new TributaryError(
          'VALIDATION_FAILED',
          `no entity key is read by every arm (${policy.arms.map(({ version }, i) => `version ${version}: ${read[i]?.join(', ') || 'none'}`).join('; ')}): ` +
            'the A/B test would have nothing to keep an entity on one arm by; name one with policy.entity (--entity)',
          { field: 'policy.entity' },
        );
      }
      if (entity !== undefined) policy = { ...policy, entity };
    }
    if (policy.kind === 'ab' && policy.entity !== undefined) {
      for (const { version } of policy.arms) {
        const entities = checked.get(version)?.entities;
        if (entities && !entities.includes(policy.entity)) {
          throw new TributaryError(
            'VALIDATION_FAILED',
            `the A/B entity "${policy.entity}" is not an entity key of version ${version} (its entity keys: ${entities.join(', ') || 'none'})`,
            { field: 'policy.entity' },
          );
        }
      }
    }
    const next: Routing = { ...this.next(current, model, current.champion, current.previous, by, reason), policy, shadows };
    const result = await this.routes.update(next, current.revision, {
      ...this.entry(next, action, describeRollout(current)),
      to: describeRollout(next),
    });
    if (!result.ok) {
      throw new TributaryError(
        'CONFLICT',
        `the routing of ${model} changed meanwhile (now revision ${result.current?.revision ?? 0}); retry`,
      );
    }
    await this.record(result.routing);
    return result.routing;
  }

  async rollback(model: string, by: string, reason: string): Promise<Routing> {
    const current = await this.storedOrRestored(model);
    const target = current?.previous[0];
    if (!current || target === undefined) throw new TributaryError('CONFLICT', `model ${model} has no earlier champion to roll back to`);
    await this.checkServable(model, target);
    return this.store(current, this.next(current, model, target, current.previous.slice(1), by, reason), 'rollback');
  }

  audit(model: string, limit = 100): Promise<AuditEntry[]> {
    return this.routes.audit(model, limit);
  }

  /**
   * The stored routing. With `awaitRestore`, when none is stored: the one the serving replicas
   * write back within the wait, or null on a first start (no routing stored, no audit entry
   * either); a routing the audit log shows was stored and that nobody wrote back is refused
   * (CONFLICT), never replaced by a first one.
   */
  private async storedOrRestored(model: string): Promise<Routing | null> {
    const stored = await this.routes.get(model);
    const wait = this.options.awaitRestore;
    if (stored || !wait) return stored;
    // The audit log is lost with the routing when the whole Redis is (a restart, a flush), but
    // when it remains it tells a lost routing from a first start.
    const [last] = await this.routes.audit(model, 1);
    const seconds = `${wait.ms / 1000} s`;
    wait.notify?.(
      last
        ? `the routing of ${model} is no longer stored (the audit log's last change: revision ${last.revision}); waiting up to ${seconds} for the serving replicas to write it back`
        : `no routing of ${model} is stored: waiting up to ${seconds} in case serving replicas write back one the store lost (if none does, none was ever stored: a first start)`,
    );
    const deadline = Date.now() + wait.ms;
    do {
      await sleep(Math.max(0, Math.min(RESTORE_CHECK_MS, deadline - Date.now())));
      const restored = await this.routes.get(model);
      if (restored) return restored;
    } while (Date.now() < deadline);
    if (!last) return null;
    throw new TributaryError(
      'CONFLICT',
      `the routing of ${model} was lost from the routing store (the audit log's last change: revision ${last.revision}, ${last.action} to ${last.to} at ${last.at} by ${last.by}) and no serving replica wrote it back within ${seconds}; ` +
        'a serving replica writes back the last routing it read at its next routing poll: retry once `list` shows a routing. Nothing was changed. ' +
        "(With no replica running, the first one to start initialises a routing from the registry's record of the last routing, or the highest registered version without one.)",
    );
  }

  /** Checks a version as promoting does; one that passes is added to `checked`, if given. */
  private async checkServable(
    model: string,
    version: string,
    checked?: Map<string, ModelVersion>,
  ): Promise<{ entities: readonly string[] } | void> {
    const read = await this.version(model, version);
    try {
      await inspectModel(read.manifest, read.bytes);
      const result = this.check(read.manifest);
      checked?.set(version, read);
      return result;
    } catch (error) {
      throw rejected(error);
    }
  }

  /** The next routing; a new champion ends any rollout policy, and leaves the shadows but itself. */
  private next(current: Routing | null, model: string, champion: string, previous: string[], by: string, reason: string): Routing {
    return {
      model,
      champion,
      previous,
      policy: { kind: 'champion' },
      shadows: (current?.shadows ?? []).filter((v) => v !== champion),
      revision: (current?.revision ?? 0) + 1,
      updated_at: new Date().toISOString(),
      updated_by: by,
      reason,
    };
  }

  private entry(routing: Routing, action: AuditEntry['action'], from: string | null): AuditEntry {
    return {
      at: routing.updated_at,
      by: routing.updated_by,
      action,
      reason: routing.reason,
      from,
      to: routing.champion,
      revision: routing.revision,
    };
  }

  private async store(current: Routing, next: Routing, action: AuditEntry['action']): Promise<Routing> {
    const result = await this.routes.update(next, current.revision, this.entry(next, action, current.champion));
    if (!result.ok) {
      throw new TributaryError(
        'CONFLICT',
        `the routing of ${next.model} changed meanwhile (now revision ${result.current?.revision ?? 0}); retry`,
      );
    }
    await this.record(result.routing);
    return result.routing;
  }

  /**
   * Keeps `routing` in `<root>/<model>/routing.json` (the last writer wins): every change made
   * through this registry and every routing revision a replica reads is recorded, so
   * that a first start after the routing store lost everything (a Redis without persistence
   * restarted while no replica ran) begins from the routing last served, not from the highest
   * registered version (maybe one rolled back). A registry directory that cannot be written
   * (read-only, baked into an image) keeps no record: told once through `warn`.
   */
  async record(routing: Routing): Promise<void> {
    const target = join(this.dir(routing.model), RECORD_FILE);
    const staging = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(staging, JSON.stringify(routing, null, 2) + '\n');
      await rename(staging, target);
      this.recordFailing = false;
    } catch (error) {
      await rm(staging, { force: true });
      // Tried again at every change (a full disk is freed, a mount made writable): a record left behind would restore an older routing.
      if (this.recordFailing) return;
      this.recordFailing = true;
      this.options.warn?.(
        `cannot record the routing of ${routing.model} in ${target} (${(error as Error).message}); without that record a start after the routing store lost everything serves the highest registered version`,
      );
    }
  }

  /** The routing recorded beside the versions, or null (none, or unreadable: then not used). */
  async recorded(model: string): Promise<Routing | null> {
    const text = await readFile(join(this.dir(model), RECORD_FILE), 'utf8').catch(() => null);
    if (text === null) return null;
    try {
      const routing = JSON.parse(text) as Routing;
      const version = (v: unknown) => typeof v === 'string' && SAFE.test(v);
      if (
        routing?.model === model &&
        version(routing.champion) &&
        Array.isArray(routing.previous) &&
        routing.previous.every(version) &&
        Number.isSafeInteger(routing.revision) &&
        routing.revision > 0
      ) {
        return routing;
      }
    } catch {
      // not JSON: ignored like a record of another shape
    }
    this.options.warn?.(`the routing record ${join(this.dir(model), RECORD_FILE)} is not a routing of ${model}; not used`);
    return null;
  }

  /**
   * A first routing from the record, when its champion can serve: its rollout policy and shadows
   * too when they check and serve (otherwise the champion alone), as revision record + 1.
   */
  private async fromRecord(model: string, by: string, checked?: Map<string, ModelVersion>): Promise<Routing | null> {
    const recorded = await this.recorded(model);
    if (!recorded) return null;
    const servable = (version: string) =>
      this.checkServable(model, version, checked).then(
        () => true,
        () => false,
      );
    if (!(await servable(recorded.champion))) return null;
    const policy = recorded.policy ?? { kind: 'champion' as const };
    const shadows = recorded.shadows ?? [];
    let rollout = true;
    try {
      checkPolicy(policy, recorded.champion, shadows);
      for (const version of new Set([...policyVersions(policy), ...shadows])) rollout &&= await servable(version);
    } catch {
      rollout = false;
    }
    return {
      model,
      champion: recorded.champion,
      previous: recorded.previous.slice(0, PREVIOUS_KEPT),
      policy: rollout ? policy : { kind: 'champion' },
      shadows: rollout ? shadows : [],
      revision: recorded.revision + 1,
      updated_at: new Date().toISOString(),
      updated_by: by,
      reason: `no routing stored: restored from the registry's record of revision ${recorded.revision} (${RECORD_FILE})${rollout ? '' : '; its rollout could not be restored, champion only'}`,
    };
  }
}

function rejected(error: unknown): Error {
  if (error instanceof TributaryError) return error;
  if (error instanceof ModelLoadError || (error as Error).name === 'FeaturePlanError') {
    return new TributaryError('MODEL_REJECTED', (error as Error).message);
  }
  return error as Error;
}
