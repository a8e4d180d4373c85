/** What the trainer's command-line tools share: paths, times, model versions, inputs, exit codes. */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readModelVersion, type ModelManifest } from '@tributary/inference';
import {
  checkBrokersReachable,
  createEventLog,
  gradientBoostingParams,
  isBadOption,
  loadConfig,
  MAX_EVENT_TIME,
  parseDuration,
  parseEventTime,
  OutputClosed,
  sayStdoutFailure,
  UsageError,
  userPath,
  type Config,
  type EventLog,
} from '@tributary/shared';
import { InputError, readNdjsonFile, readTopic, type LogInput } from './log-input.js';
import { FeatureSourceError } from './point-in-time.js';
import { VersionDirectoryRefused, type TreeSettings } from './train-model.js';

// Shared with the other commands: a wrong or missing flag (exit code 2), paths from where the command was run, a
// stdout closed by its reader.
export { OutputClosed, UsageError, userPath } from '@tributary/shared';

/**
 * The settings, a relative MODEL_REGISTRY_DIR taken as the path flags are, from where
 * `npm run` was started (`npm run … -w services/trainer` runs in services/trainer).
 */
export function cliConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const registry = env.MODEL_REGISTRY_DIR?.trim();
  return loadConfig(registry ? { ...env, MODEL_REGISTRY_DIR: userPath(registry, env) } : env);
}

export function parseTimeFlag(value: string, flag: string, now = Date.now()): number {
  if (value === 'now') return now;
  const digits = /^\d+$/.test(value);
  const time = parseEventTime(digits ? Number(value) : value);
  if (time === null && digits)
    throw new UsageError(`${flag}: ${value} is after the latest time a date can hold (${MAX_EVENT_TIME} epoch ms, +275760-09-13)`);
  if (time === null) throw new UsageError(`${flag}: "${value}" is not a time (epoch ms, an RFC 3339 date-time with a zone, or now)`);
  return time;
}

/** A numeric flag's value as a number (NaN if it is none), refused when blank (`--seed ""`), which `Number` would take for 0. */
export function numberFlag(value: string, flag: string): number {
  if (value.trim() === '') throw new UsageError(`${flag} is blank: give a number`);
  return Number(value);
}

/** The most boosting rounds `--trees` takes (early stopping keeps the best of them). */
export const MAX_TREES = 10_000;

/** Tree settings given as flags: out of `gradientBoostingParams`' ranges, or more than MAX_TREES trees, a wrong option. */
export function checkTreeFlags(trees: TreeSettings): void {
  if (!(Number.isInteger(trees.trees) && trees.trees >= 1 && trees.trees <= MAX_TREES))
    throw new UsageError(`--trees must be an integer in [1, ${MAX_TREES}], got ${String(trees.trees)}`);
  try {
    gradientBoostingParams(trees);
  } catch (error) {
    const flags: Record<string, string> = { learningRate: '--learning-rate', maxLeaves: '--max-leaves', maxDepth: '--max-depth' };
    throw new UsageError((error as Error).message.replace(/^trainGradientBoosting: (\w+)/, (_, key: string) => flags[key] ?? key));
  }
}

/** `--allowed-lateness`: a duration up to 365d, the most ALLOWED_LATENESS takes. */
export function parseLatenessFlag(value: string): number {
  const ms = parseDurationFlag(value, '--allowed-lateness');
  if (ms > 365 * 86_400_000) throw new UsageError(`--allowed-lateness: ${value} is more than 365d (the most ALLOWED_LATENESS takes)`);
  return ms;
}

/** A duration such as 30s, 10m, 7d; `0` for none when `zero` is allowed. */
export function parseDurationFlag(value: string, flag: string, zero = false): number {
  if (zero && value === '0') return 0;
  try {
    return parseDuration(value);
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`);
  }
}

/**
 * A model version directory: a path holding `manifest.json`, or `NAME/VERSION` in the model
 * registry (MODEL_REGISTRY_DIR).
 */
export function modelDirectory(spec: string, config: Config): string {
  const path = userPath(spec);
  if (existsSync(join(path, 'manifest.json'))) return path;
  const inRegistry = resolve(config.MODEL_REGISTRY_DIR, spec);
  if (/^[^/]+\/[^/]+$/.test(spec) && existsSync(join(inRegistry, 'manifest.json'))) return inRegistry;
  throw new UsageError(`--model ${spec}: no manifest.json at ${path}, nor a version ${spec} in the registry ${config.MODEL_REGISTRY_DIR}`);
}

export async function readManifest(dir: string): Promise<ModelManifest> {
  return (await readModelVersion(dir)).manifest;
}

/** The manifests of a model's versions in the registry, by version (damaged folders skipped: their encoding is not known). */
export async function registryManifests(config: Config, model: string): Promise<Map<string, ModelManifest>> {
  const dir = resolve(config.MODEL_REGISTRY_DIR, model);
  const manifests = new Map<string, ModelManifest>();
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const manifest = await readManifest(join(dir, entry.name)).catch(() => null);
    if (manifest?.name === model && manifest.version === entry.name) manifests.set(entry.name, manifest);
  }
  return manifests;
}

/** `[SOURCE=]VALUE` flags: by source name (one of `sources`), the first source for bare values. */
export function namedValues(values: string[], sources: readonly string[], flag: string): Map<string, string> {
  const named = new Map<string, string>();
  for (const value of values) {
    const match = /^([a-z][a-z0-9_]*)=(.+)$/.exec(value);
    const [name, rest] = match ? [match[1]!, match[2]!] : [sources[0]!, value];
    if (!sources.includes(name)) throw new UsageError(`${flag} ${value}: unknown source "${name}" (known: ${sources.join(', ')})`);
    if (named.has(name)) throw new UsageError(`${flag}: source "${name}" given twice`);
    named.set(name, rest);
  }
  return named;
}

/** Opens the event log of KAFKA_BROKERS, once, for the inputs read from topics. */
export function eventLogOpener(config: Config): { open(flag: string): Promise<EventLog>; close(): Promise<void> } {
  let log: Promise<EventLog> | null = null;
  return {
    async open(flag) {
      const brokers = config.KAFKA_BROKERS;
      if (!brokers) throw new UsageError(`${flag} reads a Kafka topic: set KAFKA_BROKERS`);
      log ??= checkBrokersReachable(brokers).then(() => createEventLog(config, 'trainer'));
      return log;
    },
    close: async () => {
      const opened = await log?.catch(() => null);
      await opened?.close();
    },
  };
}

/** Checks that exactly one of a file flag and a topic flag was given. */
export function exactlyOne(file: string | undefined, topic: string | undefined, flags: [string, string]): void {
  if (Boolean(file) === Boolean(topic)) throw new UsageError(`give exactly one of ${flags[0]} FILE (NDJSON) or ${flags[1]} TOPIC (Kafka)`);
}

/** A file (opened now) or a topic (its ends taken now), read as a stream when consumed, whichever flag was given (exactly one must be). */
export async function fileOrTopic(
  file: string | undefined,
  topic: string | undefined,
  flags: [string, string],
  openLog: (flag: string) => Promise<EventLog>,
): Promise<LogInput> {
  exactlyOne(file, topic, flags);
  if (file) return readNdjsonFile(userPath(file), file);
  return readTopic(await openLog(flags[1]), topic!);
}

/**
 * Runs a CLI's main: usage errors exit 2, bad input, refusals and other failures exit 1, with the
 * reason on stderr. A stdout its reader closed is said once (no stack trace) and exits 1; what
 * does not write the output (retrain's registering) goes on to its end.
 */
export function runCli(name: string, main: () => Promise<void>): void {
  const stdoutFailure = sayStdoutFailure(name);
  main().catch((error: unknown) => {
    if (error instanceof OutputClosed) {
      stdoutFailure(error);
      process.exit(1);
    }
    const usage = error instanceof UsageError || error instanceof FeatureSourceError || isBadOption(error);
    const said = usage || error instanceof InputError || error instanceof VersionDirectoryRefused;
    process.stderr.write(`${name}: ${said ? '' : 'failed: '}${(error as Error).message}\n`);
    process.exit(usage ? 2 : 1);
  });
}
