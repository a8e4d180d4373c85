/**
 * A real Prometheus server for integration tests (Debian's `prometheus` package, the binary
 * beside promtool): started on a free port of 127.0.0.1 with a generated configuration and
 * its own storage directory, queried through its HTTP API.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './wait-for.js';

/** The prometheus binary: PROMETHEUS_BIN, else `prometheus` on PATH. */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? 'prometheus';

/** Why no Prometheus server can run here, or '' when one can. */
export function prometheusMissing(): string {
  const version = spawnSync(PROMETHEUS_BIN, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (version.error || version.status !== 0) {
    return `no Prometheus server: \`${PROMETHEUS_BIN} --version\` failed (${version.error?.message ?? version.stderr.trim()}); apt-get install -y prometheus`;
  }
  return '';
}

export interface PrometheusOptions {
  /** A directory of the test's own: the configuration and the storage go there. */
  dir: string;
  /** Scrape and rule-evaluation interval. */
  interval: string;
  /** Scrape jobs: the job name and the `host:port` targets serving /metrics. */
  jobs: Record<string, string[]>;
  /** Rule files to load (absolute paths). */
  ruleFiles: string[];
}

export interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  /** Vector results (instant queries) carry `value`, matrix results (range queries) `values`. */
  result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[];
}

export interface Prometheus {
  url: string;
  /** An instant query at `time` (seconds; default now). */
  query(expr: string, time?: number): Promise<QueryResult>;
  /** A range query from `start` to `end` (seconds) every `step` seconds. */
  queryRange(expr: string, start: number, end: number, step: number): Promise<QueryResult>;
  /** The expression as Prometheus prints it (`/api/v1/format_query`): how the rules API shows a rule's query. */
  format(expr: string): Promise<string>;
  /** GET an API path (e.g. `/api/v1/rules`) and return its `data`. */
  api<T>(path: string): Promise<T>;
  output(): string;
  stop(): Promise<void>;
}

function yamlList(values: string[]): string {
  return `[${values.map((v) => JSON.stringify(v)).join(', ')}]`;
}

export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const configFile = join(options.dir, 'prometheus.yml');
  const lines = [
    'global:',
    `  scrape_interval: ${options.interval}`,
    `  scrape_timeout: ${options.interval}`,
    `  evaluation_interval: ${options.interval}`,
    `rule_files: ${yamlList(options.ruleFiles)}`,
    'scrape_configs:',
    ...Object.entries(options.jobs).flatMap(([job, targets]) => [
      `  - job_name: ${job}`,
      `    static_configs: [{ targets: ${yamlList(targets)} }]`,
    ]),
  ];
  await writeFile(configFile, lines.join('\n') + '\n');

  let output = '';
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(options.dir, 'data')}`,
      // Port 0: the OS picks a free port; the log line "Listening on" says which.
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  try {
    const deadline = Date.now() + 30_000;
    let address: string | undefined;
    while (!(address = /msg="Listening on" address=(127\.0\.0\.1:\d+)/.exec(output)?.[1])) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with status ${child.exitCode}:\n${output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`prometheus did not listen within 30 s:\n${output.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const url = `http://${address}`;
    await waitFor(async () => (await fetch(`${url}/-/ready`)).status === 200, { timeoutMs: 30_000, what: 'prometheus to be ready' });

    const post = async <T>(path: string, params: Record<string, string>) => {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(params).toString(),
      });
      return (await response.json()) as { status: 'success' | 'error'; error?: string; data?: T };
    };
    const query = async (path: string, params: Record<string, string>): Promise<QueryResult> => {
      const body = await post<{ result: QueryResult['result'] }>(path, params);
      return { status: body.status, ...(body.error ? { error: body.error } : {}), result: body.data?.result ?? [] };
    };

    return {
      url,
      query: (expr, time) => query('/api/v1/query', { query: expr, ...(time === undefined ? {} : { time: String(time) }) }),
      queryRange: (expr, start, end, step) =>
        query('/api/v1/query_range', { query: expr, start: String(start), end: String(end), step: String(step) }),
      format: async (expr) => {
        const body = await post<string>('/api/v1/format_query', { query: expr });
        if (body.status !== 'success' || body.data === undefined) throw new Error(`format_query ${expr}: ${body.error ?? body.status}`);
        return body.data;
      },
      api: async <T>(path: string) => {
        const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; error?: string; data: T };
        if (body.status !== 'success') throw new Error(`GET ${path}: ${body.error ?? body.status}`);
        return body.data;
      },
      output: () => output,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
