/**
 * The monitoring as an operator gets it: a real Prometheus (Debian's `prometheus` package)
 * scrapes the services, each started on its own as a process on the real Kafka-protocol
 * broker and Redis, while the simulator sends traffic with a drift injected early (every
 * amount x3 from its 751st transaction on); it loads the project's alert rules. Through
 * Prometheus's HTTP API the test proves that:
 * - the injected drift makes the drift alerts (FeatureDrifted, FeaturePsiHigh) fire for the
 *   amount, whose drift flag Prometheus had recorded at 0 before the drift point;
 * - every query of every panel of the generated dashboards (deploy/grafana/dashboards/*.json),
 *   with each value of its template variables, parses and returns data, except the queries
 *   listed in NO_DATA_IN_A_SHORT_RUN with the reason;
 * - every alert rule is loaded with the expression of deploy/prometheus/src/alerts.ts (what
 *   alerts.yml is generated from) and is evaluated without error.
 * - the rules on the monitor select its series: MonitorDown's `up` is the monitor's target, and
 *   MonitorStalled, whose predictions published have data, stays quiet while it consumes.
 * The panels about failures get their data from failures caused through public interfaces:
 * a wrong admin key, a batch larger than the model queue, a malformed record on the source
 * topic, a Redis outage of the inference service alone (a TCP proxy the test cuts), a model
 * promotion, and a promotion to a version the replica's registry does not have.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaEventLog } from '@tributary/shared';
import { rulesYaml } from '../../deploy/prometheus/build.js';
import { groups, type RuleGroup } from '../../deploy/prometheus/src/alerts.js';
import { withoutGrafanaVariables } from '../../shared/test/deploy/promql.js';
import { prometheusMissing, startPrometheus, type Prometheus, type QueryResult } from '../support/prometheus.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARDS_DIR = join(ROOT, 'deploy/grafana/dashboards');
const MODEL = 'fraud_detector';

const services = realServices();
const missing = services.missing('kafka') || services.missing('redis') || prometheusMissing();
const required = process.env.TRIBUTARY_REQUIRE_INTEGRATION === '1';
if (missing && !required) console.warn(`[integration] skipping the Prometheus test: ${missing}`);

/** Scrape and rule-evaluation interval of the test's Prometheus. */
const INTERVAL = '1s';
/**
 * The rules' `for` durations (1 minute to 1 hour) say how long a condition must hold before
 * it pages; no test can wait that long. The test loads the rules generated from the same
 * source as alerts.yml, every expression and window unchanged, with only `for` shortened to
 * this (the promtool tests in deploy/prometheus/tests check the real durations). The drift
 * needs no change in the monitor either: its window is the last hour, which holds the whole
 * run.
 */
const SHORT_FOR_SECONDS = 3;
const SHORT_FOR = `${SHORT_FOR_SECONDS}s`;
/** The simulator's drift: amounts x3 from the 751st transaction (15 s at 50/s). */
const DRIFT = 'after=750,amount=3';
const DRIFTED_FEATURE = 'request:amount';

/**
 * Dashboard queries that cannot return data in a run of a few minutes, with the reason. Each
 * must still parse, and must return nothing (else it does not belong here).
 */
const NO_DATA_IN_A_SHORT_RUN: Record<string, string> = {
  'tributary_model_quality{model=~"$model",metric="$metric",window="24h"} offset 1d':
    'the 24h quality one day earlier: Prometheus holds a day of history only after a day',
};

interface Running {
  name: string;
  child: ChildProcess;
  output: () => string;
}

function start(name: string, args: string[], env: Record<string, string>): Running {
  let output = '';
  const child = spawn('npm', ['--silent', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that stopping it stops npm and the service under it.
    detached: true,
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { name, child, output: () => output };
}

async function stop(running: Running): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // the process group is gone already
    }
  };
  signal('SIGTERM');
  const killer = setTimeout(() => signal('SIGKILL'), 15_000);
  await exited;
  clearTimeout(killer);
}

/** Waits for `pattern` in a process's output and returns its first group; fails at once, with the output, if the process exits. */
async function urlFrom(running: Running, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = pattern.exec(running.output())?.[1];
    if (url) return url;
    if (running.child.exitCode !== null) throw new Error(`${running.name} exited (${running.child.exitCode}):\n${running.output()}`);
    if (Date.now() > deadline) throw new Error(`${running.name} did not start within 60 s:\n${running.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const hostPort = (url: string) => new URL(url).host;

/** The rule groups with every `for` set to SHORT_FOR. */
function withShortFor(ruleGroups: RuleGroup[]): RuleGroup[] {
  return ruleGroups.map((g) => ({ ...g, rules: g.rules.map((r) => (r.for ? { ...r, for: SHORT_FOR } : r)) }));
}

interface Target {
  expr: string;
  instant?: boolean;
}
interface Panel {
  title: string;
  targets?: Target[];
  transformations?: { id: string }[];
}
interface Dashboard {
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; allValue?: string; options?: { value: string }[] }[] };
}

const hasData = (result: QueryResult) => result.result.some((series) => series.value !== undefined || (series.values?.length ?? 0) > 0);

interface Alert {
  labels: Record<string, string>;
  state: string;
}

describe.skipIf(Boolean(missing) && !required)(`Prometheus scraping the services${missing ? ` (${missing})` : ''}`, () => {
  const run = uniqueName('prom');
  const running: Running[] = [];
  const urls: Record<'features' | 'inference' | 'monitor', string> = { features: '', inference: '', monitor: '' };
  const adminKey = `admin-${run}-secret`;
  let dir = '';
  let redisProxy: TcpProxy | undefined;
  let prometheus: Prometheus | undefined;
  let startedAt = 0;
  const env = {
    KAFKA_BROKERS: services.kafkaBrokers?.join(',') ?? '',
    REDIS_URL: services.redisUrl ?? '',
    REDIS_KEY_PREFIX: `${run}:`,
    CONSUMER_GROUP_PREFIX: run,
    TOPIC_TRANSACTIONS: `${run}-transactions`,
    TOPIC_LABELS: `${run}-labels`,
    TOPIC_PREDICTIONS: `${run}-predictions`,
    TOPIC_DEAD_LETTER: `${run}-dead-letter`,
    TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
    LOG_LEVEL: 'info',
    PORT: '0',
  };
  /** What every process said, for a failure's message. */
  const outputs = () => running.map((r) => `--- ${r.name}\n${r.output().slice(-2000)}`).join('\n');

  beforeAll(async () => {
    if (missing) throw new Error(`the Prometheus integration test is required (TRIBUTARY_REQUIRE_INTEGRATION=1) but: ${missing}`);
    startedAt = Date.now() / 1000;
    dir = await mkdtemp(join(tmpdir(), 'tributary-prometheus-'));
    // The replica's registry holds version 1; the test registers version 2 through the admin API later.
    await cp(join(ROOT, 'models', MODEL, '1'), join(dir, 'registry', MODEL, '1'), { recursive: true });

    const redis = new URL(services.redisUrl!);
    redisProxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    const proxied = new URL(services.redisUrl!);
    proxied.host = redisProxy.address;

    running.push(start('features', ['start', '-w', 'services/features'], env));
    running.push(start('monitor', ['start', '-w', 'services/monitor'], env));
    running.push(
      start('inference', ['start', '-w', 'services/inference'], {
        ...env,
        // Only the inference service reaches Redis through the proxy: its outage is the test's to cause.
        REDIS_URL: proxied.toString(),
        MODEL_REGISTRY_DIR: join(dir, 'registry'),
        ADMIN_API_KEYS: `ops:${adminKey}`,
        // Far above what the simulator's one-at-a-time requests queue; batches sent together overflow it.
        MODEL_QUEUE_MAX_ROWS: '32',
        PREDICT_BATCH_MAX_ROWS: '32',
        // A limit per client address far above the simulator's rate: the rate-limited series are there, at 0.
        RATE_LIMIT_PER_KEY: '100000',
      }),
    );
    const [features, monitor, inference] = running as [Running, Running, Running];
    urls.inference = await urlFrom(inference, /listening on (http:\/\/[\d.]+:\d+)/);
    urls.features = await urlFrom(features, /metrics on (http:\/\/[\d.]+:\d+)\/metrics/);
    urls.monitor = await urlFrom(monitor, /metrics on (http:\/\/[\d.]+:\d+)\/metrics/);

    const rulesFile = join(dir, 'alerts.yml');
    await writeFile(rulesFile, rulesYaml(withShortFor(groups)));
    await mkdir(join(dir, 'prometheus'));
    // The job names of deploy/prometheus/prometheus.yml: rules aggregate `by (job)`.
    prometheus = await startPrometheus({
      dir: join(dir, 'prometheus'),
      interval: INTERVAL,
      jobs: { inference: [hostPort(urls.inference)], features: [hostPort(urls.features)], monitor: [hostPort(urls.monitor)] },
      ruleFiles: [rulesFile],
    });

    // Traffic starts once everything runs and is scraped, so that Prometheus sees the time before the drift point.
    running.push(
      start('simulator', ['start', '-w', 'services/simulator'], {
        ...env,
        INFERENCE_URL: urls.inference,
        SIMULATOR_RATE: '50',
        // Labels within seconds, so that the quality, label-delay and slice panels have data.
        SIMULATOR_LABEL_DELAY: '1s',
        SIMULATOR_DRIFT: DRIFT,
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(running.map(stop));
    await prometheus?.stop();
    await redisProxy?.close();
    if (services.redisUrl) {
      const redis = new Redis(services.redisUrl);
      const keys = await redis.keys(`${run}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  /** The alerts in a state (`firing`, `pending`) now. */
  const alerts = async (state: string) =>
    (await prometheus!.api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts.filter((a) => a.state === state);

  it('scrapes every service', async () => {
    const health = await waitFor(
      async () => {
        const { activeTargets } = await prometheus!.api<{
          activeTargets: { labels: { job: string }; health: string; lastError: string }[];
        }>('/api/v1/targets');
        return activeTargets.length === 3 && activeTargets.every((t) => t.health === 'up') ? activeTargets : null;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'every scrape target to be up' },
    );
    expect(health.map((t) => t.labels.job).sort()).toEqual(['features', 'inference', 'monitor']);
    // The same job names as the shipped configuration (besides Prometheus itself): the rules aggregate `by (job)`.
    const shipped = await readFile(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
    const jobs = [...shipped.matchAll(/job_name: (\S+)/g)].map((m) => m[1]).filter((job) => job !== 'prometheus');
    expect(jobs.sort()).toEqual(['features', 'inference', 'monitor']);
  }, 40_000);

  it('the injected drift makes the drift alerts fire for the amount, which was not drifted before', async () => {
    const firing = await waitFor(
      async () => {
        const amount = (await alerts('firing')).filter((a) => a.labels.feature === DRIFTED_FEATURE);
        const names = new Set(amount.map((a) => a.labels.alertname));
        return names.has('FeatureDrifted') && names.has('FeaturePsiHigh') ? amount : null;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `FeatureDrifted and FeaturePsiHigh firing for ${DRIFTED_FEATURE}` },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${outputs()}`);
    });
    for (const alert of firing) expect(alert.labels).toMatchObject({ model: MODEL, version: '1', severity: 'warning' });

    // Before the drift point the amount matched the reference profile: Prometheus recorded its flag at 0 and a low PSI.
    const series = `tributary_feature_drift{job="monitor",feature="${DRIFTED_FEATURE}"`;
    const [flagBefore, psiBefore, flagNow] = await Promise.all([
      prometheus!.query(`min_over_time(${series},statistic="drifted"}[10m])`),
      prometheus!.query(`min_over_time(${series},statistic="psi"}[10m])`),
      prometheus!.query(`${series},statistic="drifted"}`),
    ]);
    expect(flagBefore.result.map((s) => s.value![1])).toEqual(['0']);
    expect(Number(psiBefore.result[0]!.value![1])).toBeLessThan(0.1);
    expect(flagNow.result.map((s) => s.value![1])).toEqual(['1']);
  }, 150_000);

  it('failures caused through the public interfaces show in the metrics', async () => {
    const inference = urls.inference;
    const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

    // A wrong admin key: refused, counted as denied.
    const denied = await fetch(`${inference}/admin/models/${MODEL}`, { headers: { 'x-api-key': 'not-an-admin-key-at-all' } });
    expect(denied.status).toBe(401);

    // Full batches (32 rows, the model queue's bound) sent together: those whose rows find the
    // queue taken are shed with 503. Bursts go on until one is (each burst's requests reach the
    // model in the same turns only as the machine schedules them).
    const row = (i: number) => ({
      request_id: `${run}-batch-${i}`,
      entities: { user_id: 'u_1', merchant_id: 'm_1' },
      features: { amount: 10, country: 'US', channel: 'web' },
    });
    const batch = () =>
      fetch(`${inference}/v1/predict/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ rows: Array.from({ length: 32 }, (_, i) => row(i)) }),
      }).then((response) => response.status);
    const statuses: number[] = [];
    for (let burst = 0; burst < 50 && !statuses.includes(503); burst++)
      statuses.push(...(await Promise.all(Array.from({ length: 8 }, batch))));
    expect(statuses).toContain(503);
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);

    // A malformed record on the source topic: dead-lettered by the feature pipeline.
    const eventLog = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: `${run}-test` });
    try {
      await eventLog.publish(env.TOPIC_TRANSACTIONS, [{ key: 'u_1', value: '{"not json' }]);
    } finally {
      await eventLog.close();
    }

    // Redis unreachable for the inference service alone: predictions are served degraded until it is back.
    redisProxy!.cut();
    try {
      await waitFor(async () => /tributary_predictions_total\{[^}]*degraded="true"\} [1-9]/.test(await metricsOf(inference)), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: 'degraded predictions while Redis is cut off',
      });
      // The feature route cannot degrade: it answers 503, counted as a server error.
      const features = await fetch(`${inference}/v1/features/user_id/u_1`);
      expect(features.status).toBe(503);
      expect(((await features.json()) as { code: string }).code).toBe('ONLINE_STORE_UNAVAILABLE');
    } finally {
      redisProxy!.restore();
    }
    await waitFor(
      async () => {
        const response = await fetch(`${inference}/v1/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(row(-1)),
        });
        return response.status === 200 && !((await response.json()) as { degraded: boolean }).degraded;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'predictions served with their features again after the outage' },
    );

    // A new version registered and promoted through the admin API: the replica loads it.
    const manifest = JSON.parse(await readFile(join(ROOT, 'models', MODEL, '1', 'manifest.json'), 'utf8')) as {
      version: string;
      file: string;
    };
    const onnx = await readFile(join(ROOT, 'models', MODEL, '1', manifest.file));
    const admin = { 'content-type': 'application/json', 'x-api-key': adminKey };
    const registered = await fetch(`${inference}/admin/models/${MODEL}/versions`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ manifest: { ...manifest, version: '2' }, model_base64: onnx.toString('base64') }),
    });
    expect(registered.status, await registered.clone().text()).toBe(201);
    const promoted = await fetch(`${inference}/admin/models/${MODEL}/promote`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ version: '2', reason: 'the Prometheus test promotes a new version' }),
    });
    expect(promoted.status, await promoted.clone().text()).toBe(200);

    // A version promoted from another registry (the CLI on a machine whose registry has version 3): this replica
    // cannot load it, refuses the change and keeps serving version 2.
    const otherRegistry = join(dir, 'other-registry');
    await cp(join(ROOT, 'models', MODEL, '1'), join(otherRegistry, MODEL, '3'), { recursive: true });
    await writeFile(join(otherRegistry, MODEL, '3', 'manifest.json'), JSON.stringify({ ...manifest, version: '3' }, null, 2));
    const cli = start('models promote', ['run', 'models', '-w', 'services/inference', '--', 'promote', '3', '--reason', 'other registry'], {
      ...env,
      MODEL_REGISTRY_DIR: otherRegistry,
    });
    running.push(cli);
    const status = await new Promise<number | null>((resolve) => {
      if (cli.child.exitCode !== null) resolve(cli.child.exitCode);
      else cli.child.once('exit', resolve);
    });
    expect(status, cli.output()).toBe(0);

    // Prometheus sees each of them (and the rejected routing change raises ModelReloadRejected at once).
    const expected = [
      'tributary_requests_denied_total{job="inference",reason="invalid_key"} > 0',
      'tributary_requests_shed_total{job="inference",reason="model_queue_full"} > 0',
      `tributary_dead_letter_records_total{job="features",consumer=~"${run}-.*",reason="malformed"} > 0`,
      'tributary_predictions_total{job="inference",degraded="true"} > 0',
      'tributary_online_store_errors_total{job="inference"} > 0',
      'tributary_http_server_errors_total{job="inference",code="ONLINE_STORE_UNAVAILABLE"} > 0',
      'tributary_model_reloads_total{job="inference",outcome="loaded"} > 0',
      'tributary_model_reloads_total{job="inference",outcome="rejected"} > 0',
      `tributary_model_serving{job="inference",model="${MODEL}",version="2"} == 1`,
    ];
    for (const expr of expected) {
      await waitFor(async () => hasData(await prometheus!.query(expr)), { timeoutMs: 30_000, intervalMs: 250, what: expr });
    }
    await waitFor(async () => (await alerts('firing')).some((a) => a.labels.alertname === 'ModelReloadRejected'), {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'ModelReloadRejected to fire',
    });
  }, 150_000);

  it('every query of every dashboard panel parses and returns data', async () => {
    const files = (await readdir(DASHBOARDS_DIR)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    const dashboards = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(DASHBOARDS_DIR, f), 'utf8')) as Dashboard));

    // Template variables: a query variable takes "All" (its allValue) and each value Prometheus lists for it; a
    // custom variable each of its options.
    const values = new Map<string, string[]>();
    for (const variable of dashboards.flatMap((d) => d.templating.list)) {
      if (variable.type === 'custom') {
        values.set(
          variable.name,
          variable.options!.map((o) => o.value),
        );
        continue;
      }
      const [, metric, label] = /^label_values\((\w+), (\w+)\)$/.exec((variable.query as { query: string }).query)!;
      const listed = await prometheus!.api<string[]>(`/api/v1/label/${label}/values?match[]=${metric}`);
      expect(listed, `the values of $${variable.name}: label_values(${metric}, ${label})`).toContain(MODEL);
      values.set(variable.name, [variable.allValue ?? '.*', ...listed]);
    }
    /** The queries Grafana would send for `expr`: one per combination of the values of its variables. */
    const expand = (expr: string): string[] => {
      let out = [withoutGrafanaVariables(expr)];
      for (const [name, options] of values) {
        if (!out[0]!.includes(`$${name}`)) continue;
        out = out.flatMap((q) => options.map((v) => q.replaceAll(`$${name}`, v)));
      }
      return out;
    };

    const queries = dashboards.flatMap((d) =>
      d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${d.title} › ${p.title}`, target: t }))),
    );
    expect(queries.length).toBeGreaterThan(30);
    const exceptions = new Set(Object.keys(NO_DATA_IN_A_SHORT_RUN));
    for (const expr of exceptions)
      expect(
        queries.map((q) => q.target.expr),
        `${expr} is in no dashboard`,
      ).toContain(expr);

    /** Each query that fails or returns nothing, with the reason; empty when all is well. */
    const check = async (): Promise<string[]> => {
      const now = Date.now() / 1000;
      const problems: string[] = [];
      for (const { where, target } of queries) {
        for (const query of expand(target.expr)) {
          const result = target.instant ? await prometheus!.query(query, now) : await prometheus!.queryRange(query, startedAt, now, 2);
          if (result.status !== 'success') problems.push(`${where}: ${query}: ${result.error}`);
          else if (exceptions.has(target.expr) === hasData(result))
            problems.push(`${where}: ${query}: ${exceptions.has(target.expr) ? 'returns data: not an exception any more' : 'no data'}`);
        }
      }
      return problems;
    };
    // Some panels need a little more traffic (slices with 30+ labels): wait for them with a deadline.
    let problems: string[] = [];
    await waitFor(
      async () => {
        problems = await check();
        return problems.length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 2_000, what: 'every panel query to return data' },
    ).catch(() => undefined);
    expect(problems).toEqual([]);

    // A table that merges one query per column (Grafana's `merge`) joins rows on the fields every
    // query has, so the columns' series must carry the same labels, with label sets in common.
    const merged = dashboards.flatMap((d) =>
      d.panels.filter((p) => p.transformations?.some((t) => t.id === 'merge')).map((p) => ({ where: `${d.title} › ${p.title}`, panel: p })),
    );
    expect(merged.length).toBeGreaterThanOrEqual(3);
    for (const { where, panel } of merged) {
      const labelSets = await Promise.all(
        panel.targets!.map(async (t) => {
          const result = await prometheus!.query(expand(t.expr)[0]!);
          return new Set(result.result.map((series) => JSON.stringify(Object.entries(series.metric).sort())));
        }),
      );
      const common = [...labelSets[0]!].filter((set) => labelSets.every((sets) => sets.has(set)));
      expect(common.length, `${where}: rows that every column's query has`).toBeGreaterThan(0);
    }
  }, 90_000);

  it('every alert rule is loaded with the expression of deploy/prometheus/src/alerts.ts and evaluates without error', async () => {
    const { groups: loaded } = await prometheus!.api<{
      groups: {
        name: string;
        rules: { name: string; query: string; duration: number; health: string; lastError?: string; lastEvaluation: string }[];
      }[];
    }>('/api/v1/rules');
    // The rules API prints each query as Prometheus formats it (label matchers sorted): compare like with like.
    const shipped = await Promise.all(
      groups.flatMap((g) =>
        g.rules.map(async (r) => ({ group: g.name, name: r.alert, query: await prometheus!.format(r.expr), for: Boolean(r.for) })),
      ),
    );
    const rules = loaded.flatMap((g) => g.rules.map((r) => ({ group: g.name, ...r })));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    // format_query may break a long expression over lines: compare on one line.
    const oneLine = (q: string) => q.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();
    expect(rules.map((r) => ({ group: r.group, name: r.name, query: oneLine(r.query) })).sort(byName)).toEqual(
      shipped.map(({ group, name, query }) => ({ group, name, query: oneLine(query) })).sort(byName),
    );
    for (const rule of rules) {
      expect(rule.health, `${rule.name}: ${rule.lastError}`).toBe('ok');
      expect(rule.lastError ?? '', rule.name).toBe('');
      expect(Date.parse(rule.lastEvaluation), `${rule.name} was never evaluated`).toBeGreaterThan(startedAt * 1000);
      expect(rule.duration, rule.name).toBe(shipped.find((s) => s.name === rule.name)!.for ? SHORT_FOR_SECONDS : 0);
      // The expression alone, as a query: it parses and Prometheus evaluates it.
      const result = await prometheus!.query(rule.query);
      expect(result.status, `${rule.name}: ${result.error}`).toBe('success');
    }
  }, 30_000);

  it('the rules on the monitor itself select its series: it is scraped under their job name, and consuming it is not stalled', async () => {
    const rule = (name: string) => groups.flatMap((g) => g.rules).find((r) => r.alert === name)!.expr;
    // MonitorDown's selector without its condition: the monitor's target, up.
    const [target] = rule('MonitorDown').split(' == ');
    const up = await waitFor(
      async () => {
        const result = await prometheus!.query(target!);
        return hasData(result) ? result : null;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: target! },
    );
    expect(up.result.map((s) => [s.metric.job, s.value![1]])).toEqual([['monitor', '1']]);
    // MonitorStalled: predictions are published and the monitor reads them (each side has data), so it is quiet.
    const sides = rule('MonitorStalled').split(' unless ');
    for (const side of sides)
      await waitFor(async () => hasData(await prometheus!.query(side)), { timeoutMs: 30_000, intervalMs: 500, what: side });
    expect((await prometheus!.query(rule('MonitorStalled'))).result).toEqual([]);
  }, 40_000);
});
