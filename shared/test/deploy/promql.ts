/**
 * What the deploy tests share: every PromQL expression of the dashboards and alert rules, a
 * PromQL syntax check (the lezer grammar of the Prometheus UI), and the metric names the
 * services register, read from their source (`name: 'tributary_...'` in a prom-client
 * constructor).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { dashboards } from '../../../deploy/grafana/build.js';
import { groups } from '../../../deploy/prometheus/src/alerts.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Expression {
  where: string;
  expr: string;
}

/** Grafana's built-in variables that stand where PromQL wants a duration, and a value for each. */
const GRAFANA_DURATIONS: Record<string, string> = { $__rate_interval: '5m', $__interval: '1m', $__range: '1h' };

/** Replaces Grafana's duration variables with durations, so the text is PromQL. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, (v) => GRAFANA_DURATIONS[v]!);
}

export function dashboardExpressions(): Expression[] {
  const out: Expression[] = [];
  for (const [file, dashboard] of Object.entries(dashboards)) {
    for (const panel of dashboard.panels ?? []) {
      for (const target of ('targets' in panel ? panel.targets : undefined) ?? []) {
        out.push({ where: `${file}: "${panel.title}" ${String(target.refId)}`, expr: withoutGrafanaVariables(String(target.expr)) });
      }
    }
  }
  return out;
}

export function ruleExpressions(): Expression[] {
  return groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

export interface Parsed {
  /** Text around each syntax error. */
  errors: string[];
  /** Metric names of the vector selectors. */
  metrics: string[];
}

export function parsePromql(expr: string): Parsed {
  const errors: string[] = [];
  const metrics: string[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`at ${node.from}: ...${expr.slice(Math.max(0, node.from - 20), node.from + 20)}...`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') metrics.push(expr.slice(node.from, node.to));
    },
  });
  return { errors, metrics };
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')).map((e) => join(e.parentPath, e.name));
}

/**
 * The series names the services expose: each metric registered in services/\*\/src and
 * shared/src, and for a histogram its _bucket, _sum and _count series.
 */
export function exposedMetrics(): Promise<Set<string>> {
  exposed ??= readExposedMetrics();
  return exposed;
}

let exposed: Promise<Set<string>> | undefined;

async function readExposedMetrics(): Promise<Set<string>> {
  const dirs = [join(ROOT, 'shared/src')];
  for (const service of await readdir(join(ROOT, 'services'))) dirs.push(join(ROOT, 'services', service, 'src'));
  const names = new Set<string>();
  for (const dir of dirs) {
    for (const file of await sourceFiles(dir).catch(() => [])) {
      const text = await readFile(file, 'utf8');
      // (FixedHistogram: the monitor's histograms, exposed as prom-client's.)
      for (const m of text.matchAll(/new (Counter|Gauge|Histogram|FixedHistogram|Summary)\(\{\s*name: '(tributary_\w+)'/g)) {
        const [, kind, name] = m as unknown as [string, string, string];
        names.add(name);
        if (kind === 'Histogram' || kind === 'FixedHistogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
        if (kind === 'Summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
      }
    }
  }
  return names;
}
