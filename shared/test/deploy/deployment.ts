/**
 * What the container and cluster tests share: the repository's services as their
 * entry points declare them (does it serve HTTP, on which default port), the compose
 * file parsed as Compose reads it (merge keys, `${VAR:-default}` with the variable
 * unset), and external tools that may or may not be installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SERVICE_DEFAULTS, VARIABLES } from '../../src/config.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

export interface ServiceEntry {
  name: string;
  /** services/<name>/src/main.ts exists: the image can run it (SERVICE=<name>). */
  runnable: boolean;
  /** It serves /healthz, /readyz and /metrics over HTTP. */
  http: boolean;
  /** The port it listens on when PORT is unset. */
  defaultPort: number;
}

/** Every workspace under services/ with its entry point, read from its main.ts. */
export function serviceEntries(): Map<string, ServiceEntry> {
  const entries = new Map<string, ServiceEntry>();
  for (const name of readdirSync(join(ROOT, 'services'))) {
    const main = join(ROOT, 'services', name, 'src/main.ts');
    const runnable = existsSync(main);
    const text = runnable ? readFileSync(main, 'utf8') : '';
    // The inference app and the ops server are the two HTTP servers a service starts.
    const http = /\b(startOpsServer|startInference)\(/.test(text);
    // Its own defaults, when its main.ts gives them to loadConfig.
    const own = text.includes(`SERVICE_DEFAULTS.${name}`) ? SERVICE_DEFAULTS[name] : undefined;
    const port = own?.PORT ?? VARIABLES.PORT.default;
    entries.set(name, { name, runnable, http, defaultPort: Number(port) });
  }
  return entries;
}

export const VARIABLE_NAMES: ReadonlySet<string> = new Set(Object.keys(VARIABLES));

/** Variables that the image reads rather than the services (Dockerfile: which service to run). */
export const IMAGE_VARIABLES: ReadonlySet<string> = new Set(['SERVICE']);

/** `${NAME:-default}` and `${NAME-default}` as Compose resolves them with NAME unset; `$$` is a literal `$`. */
export function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{(\w+)(?::?-([^}]*))?\}/g, (match, _name: string | undefined, fallback: string | undefined) =>
    match === '$$' ? '$' : (fallback ?? ''),
  );
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  ports?: string[];
  volumes?: string[];
  command?: string[] | string;
  entrypoint?: string[] | string;
  restart?: string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export function composeFile(): ComposeFile {
  return parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
}

/** A service's environment as strings, interpolated. */
export function environmentOf(service: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ''))]));
}

/** Runs an external tool; `missing` when it is not installed. */
export function tool(command: string, args: string[]): { missing: boolean; status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { missing, status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '') };
}
