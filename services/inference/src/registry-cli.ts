/**
 * The model registry from the command line:
 *   npm run models -- list
 *   npm run models -- register <dir>          (a folder with manifest.json and the ONNX file)
 *   npm run models -- promote <version> --reason "<why>"
 *   npm run models -- rollback --reason "<why>"
 *   npm run models -- rollout champion|canary <version> --percent <p>|ab <v>:<weight>,<v>:<weight>|bandit <v>,<v>
 *                              [--shadow <v>,<v>] [--entity <key field>] --reason "<why>"
 *   npm run models -- audit [--limit 20]
 * Options: --model <name> (default MODEL_NAME), --by <who> (default $USER@host).
 * The registry directory is MODEL_REGISTRY_DIR; the routing is in Redis (REDIS_URL,
 * REDIS_KEY_PREFIX), where every inference replica reads it. A change that finds no routing
 * stored waits a few seconds for the serving replicas to write back one Redis lost, and starts
 * from it (see RegistryOptions.awaitRestore); only on a first start does it begin from the
 * highest registered version.
 */
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, fraud, isBadOption, loadConfig, planModelFeatures, TributaryError } from '@tributary/shared';
import { ModelLoadError, readModelFiles } from './model.js';
import { ModelRegistry } from './registry/registry.js';
import { describeRollout } from './registry/registry.js';
import type { RolloutPolicy } from './registry/rollout.js';
import { RedisRoutingStore, type AuditEntry, type Routing } from './registry/routing.js';

const USAGE = `usage: npm run models -- <list | register <dir> | promote <version> --reason <why> | rollback --reason <why> | rollout <policy> --reason <why> | audit> [--model <name>] [--by <who>] [--limit <n>]
  rollout policies: champion | canary <version> --percent <more than 0, less than 100> | ab <version>:<weight>,<version>:<weight>[,…] [--entity <key field>] | bandit <version>,<version>[,…]
  with any policy: --shadow <version>[,<version>…] (scored on every request, never returned)`;

class UsageError extends Error {}

function describe(routing: Routing | null, lastChange?: AuditEntry): string {
  if (!routing && lastChange) {
    return `none stored, though the audit log's last change is revision ${lastChange.revision} (${lastChange.action} to ${lastChange.to}, ${lastChange.at}): lost from Redis; the serving replicas write back the routing they serve at their next poll`;
  }
  if (!routing) {
    return 'none stored (the first replica to start serves the routing recorded in the registry directory, routing.json, or without one the highest version; if Redis lost it, the serving replicas write it back at their next poll)';
  }
  return `${describeRollout(routing)} (revision ${routing.revision}, ${routing.updated_at} by ${routing.updated_by}: ${routing.reason}); earlier champions: ${routing.previous.join(', ') || 'none'}`;
}

const list = (text: string | undefined, what: string): string[] => {
  const items = (text ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  if (items.length === 0) throw new UsageError(`${what} needs a comma-separated list of versions`);
  return items;
};

function parsePolicy(kind: string | undefined, argument: string | undefined, values: { percent?: string; entity?: string }): RolloutPolicy {
  switch (kind) {
    case 'champion':
      return { kind: 'champion' };
    case 'canary': {
      if (!argument) throw new UsageError('rollout canary needs the version');
      const percent = Number(values.percent);
      if (values.percent === undefined || !Number.isFinite(percent) || percent <= 0 || percent >= 100)
        throw new UsageError('rollout canary needs --percent <more than 0, less than 100>');
      return { kind: 'canary', version: argument, percent };
    }
    case 'ab': {
      const arms = list(argument, 'rollout ab').map((arm) => {
        const [version, weight] = arm.split(':');
        if (!version || weight === undefined || !Number.isFinite(Number(weight)))
          throw new UsageError(`A/B arm "${arm}" must be <version>:<weight>`);
        return { version, weight: Number(weight) };
      });
      return { kind: 'ab', arms, ...(values.entity ? { entity: values.entity } : {}) };
    }
    case 'bandit':
      return { kind: 'bandit', versions: list(argument, 'rollout bandit') };
    default:
      throw new UsageError(`rollout needs a policy: champion, canary, ab or bandit${kind ? ` (not "${kind}")` : ''}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      reason: { type: 'string' },
      by: { type: 'string' },
      limit: { type: 'string' },
      percent: { type: 'string' },
      entity: { type: 'string' },
      shadow: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const [command, argument, policyArgument] = positionals;
  const config = loadConfig();
  const model = values.model ?? config.MODEL_NAME;
  const by = values.by ?? `${userInfo().username}@${hostname()}`;
  const catalog = fraud.fraudExample().catalog;
  const routes = config.REDIS_URL
    ? new RedisRoutingStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX)
    : null;
  const needRoutes = () => {
    if (!routes) {
      throw new UsageError(
        'REDIS_URL is not set: without Redis the routing lives inside the serving process; use its admin API (POST /admin/models/<name>/promote)',
      );
    }
    return routes;
  };
  // A change finding no routing stored waits for the serving replicas to write back one Redis
  // lost: a replica notices at its next poll, up to ROUTING_POLL_INTERVAL away (plus the poll
  // itself); twice that and a second leave room for a slow one.
  const awaitRestore = { ms: 2 * config.ROUTING_POLL_INTERVAL + 1_000, notify: (message: string) => console.error(message) };
  const registry = (withRoutes: boolean) =>
    new ModelRegistry(
      config.MODEL_REGISTRY_DIR,
      withRoutes ? needRoutes() : (routes ?? (null as never)),
      (manifest) => planModelFeatures(manifest, catalog),
      { awaitRestore, warn: (message) => console.error(message) },
    );
  const reason = () => {
    if (!values.reason?.trim()) throw new UsageError(`${command} needs --reason "<why>" (kept in the audit log)`);
    return values.reason.trim();
  };
  try {
    // A rollout's bad usage is told before its Redis is reached.
    const policy = command === 'rollout' ? parsePolicy(argument, policyArgument, values) : null;
    // Every command but register reads or writes the routing: fail fast if its Redis does not answer.
    if (command !== 'register') await routes?.reachable();
    switch (command) {
      case 'list': {
        const { versions, damaged } = await registry(false).inventory(model, { load: true });
        if (versions.length === 0 && damaged.length === 0)
          throw new TributaryError('NOT_FOUND', `no model ${model} in ${config.MODEL_REGISTRY_DIR}`);
        console.log(`model ${model} in ${config.MODEL_REGISTRY_DIR}`);
        for (const v of versions)
          console.log(`  version ${v.version}  created ${v.created_at}  ${v.features} features  sha256 ${v.sha256.slice(0, 12)}…`);
        for (const d of damaged) console.log(`  version ${d.version}  DAMAGED (never served): ${d.reason}`);
        console.log(
          routes ? `routing: ${describe(await routes.get(model), (await routes.audit(model, 1))[0])}` : 'routing: (REDIS_URL not set)',
        );
        return;
      }
      case 'register': {
        if (!argument) throw new UsageError('register needs the folder of the version (manifest.json and the ONNX file)');
        // A relative folder is the caller's: `npm run` starts the script in the repository's root.
        // Read unchecked: register checks the hash, with the rest.
        const version = await readModelFiles(resolve(process.env.INIT_CWD ?? process.cwd(), argument));
        const summary = await registry(false).register(version.manifest, version.bytes);
        console.log(
          `registered ${version.manifest.name} version ${summary.version} (${summary.features} features); promote it to serve it`,
        );
        return;
      }
      case 'promote': {
        if (!argument) throw new UsageError('promote needs the version');
        const routing = await registry(true).promote(model, argument, by, reason());
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'rollback': {
        const routing = await registry(true).rollback(model, by, reason());
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'rollout': {
        const shadows = values.shadow === undefined ? [] : list(values.shadow, '--shadow');
        const routing = await registry(true).rollout(model, policy!, shadows, by, reason());
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'audit': {
        const limit = Number(values.limit ?? 20);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be an integer between 1 and 1000');
        for (const e of await registry(true).audit(model, limit)) {
          console.log(`${e.at}  revision ${e.revision}  ${e.action} ${e.from ?? '-'} -> ${e.to}  by ${e.by}: ${e.reason}`);
        }
        return;
      }
      default:
        throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
    }
  } finally {
    await routes?.close();
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError || isBadOption(error)) {
    console.error(`error: ${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  // System errors (ENOENT, ENOTDIR, EACCES...) name the path in their message.
  const system = /^E[A-Z]+$/.test(String((error as { code?: unknown }).code));
  if (error instanceof TributaryError || error instanceof ModelLoadError || error instanceof ConfigError || system) {
    console.error(`error: ${(error as Error).message}`);
    process.exit(1);
  }
  throw error;
}
