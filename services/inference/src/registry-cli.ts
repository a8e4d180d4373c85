/**
 * The model registry from the command line:
 *   npm run models -- list
 *   npm run models -- register <dir>          (a folder with manifest.json and the ONNX file)
 *   npm run models -- promote <version> --reason "<why>"
 *   npm run models -- rollback --reason "<why>"
 *   npm run models -- rollout champion|canary <version> --percent <p>|ab <v>:<weight>,<v>:<weight>|bandit <v>,<v>
 *                              [--shadow <v>,<v> | --no-shadows] [--entity <key field>] --reason "<why>"
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
import { ConfigError, fraud, isBadOption, loadConfig, planModelFeatures, TributaryError, UsageError } from '@tributary/shared';
import { ModelLoadError, readModelFiles } from './model.js';
import { parseCommandLine } from './registry-args.js';
import { ModelRegistry } from './registry/registry.js';
import { describeRollout } from './registry/registry.js';
import { RedisRoutingStore, type AuditEntry, type Routing } from './registry/routing.js';

const USAGE = `usage: npm run models -- <list | register <dir> | promote <version> --reason <why> | rollback --reason <why> | rollout <policy> --reason <why> | audit> [--model <name>] [--by <who>] [--limit <n>]
  rollout policies: champion | canary <version> --percent <more than 0, less than 100> | ab <version>:<weight>,<version>:<weight>[,…] [--entity <key field>] | bandit <version>,<version>[,…]
  with any policy: --shadow <version>[,<version>…] (scored on every request, never returned; at most 10), --no-shadows (none);
    without either, the current shadows stay (but a version the policy routes requests to)`;

function describe(routing: Routing | null, lastChange?: AuditEntry): string {
  if (!routing && lastChange) {
    return `none stored, though the audit log's last change is revision ${lastChange.revision} (${lastChange.action} to ${lastChange.to}, ${lastChange.at}): lost from Redis; the serving replicas write back the routing they serve at their next poll`;
  }
  if (!routing) {
    return 'none stored (the first replica to start serves the routing recorded in the registry directory, routing.json, or without one the highest version; if Redis lost it, the serving replicas write it back at their next poll)';
  }
  return `${describeRollout(routing)} (revision ${routing.revision}, ${routing.updated_at} by ${routing.updated_by}: ${routing.reason}); earlier champions: ${routing.previous.join(', ') || 'none'}`;
}

async function main(argv: string[]): Promise<void> {
  // Bad usage is told before the configuration is read or Redis reached.
  const { command, ...named } = parseCommandLine(argv);
  if (command.name === 'help') {
    console.log(USAGE);
    return;
  }
  const config = loadConfig();
  const model = named.model ?? config.MODEL_NAME;
  const by = named.by ?? `${userInfo().username}@${hostname()}`;
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
  try {
    // Every command but register reads or writes the routing: fail fast if its Redis does not answer.
    if (command.name !== 'register') await routes?.reachable();
    switch (command.name) {
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
        // A relative folder is the caller's: `npm run` starts the script in the repository's root.
        // Read unchecked: register checks the hash, with the rest.
        const version = await readModelFiles(resolve(process.env.INIT_CWD ?? process.cwd(), command.folder));
        const summary = await registry(false).register(version.manifest, version.bytes);
        console.log(
          `registered ${version.manifest.name} version ${summary.version} (${summary.features} features); promote it to serve it`,
        );
        return;
      }
      case 'promote': {
        const routing = await registry(true).promote(model, command.version, by, command.reason);
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'rollback': {
        const routing = await registry(true).rollback(model, by, command.reason);
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'rollout': {
        const routing = await registry(true).rollout(model, command.policy, command.shadows, by, command.reason);
        console.log(`${model}: ${describe(routing)}`);
        return;
      }
      case 'audit': {
        for (const e of await registry(true).audit(model, command.limit)) {
          console.log(`${e.at}  revision ${e.revision}  ${e.action} ${e.from ?? '-'} -> ${e.to}  by ${e.by}: ${e.reason}`);
        }
        return;
      }
    }
  } finally {
    await routes?.close();
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (isBadOption(error)) {
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
