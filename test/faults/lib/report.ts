/**
 * The suite's output: one row of figures per scenario, the goals each row is held to, one
 * table for all, and the results file. A figure that does not apply to a scenario is null
 * (printed as a dash).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as prettier from 'prettier';

export interface Check {
  /** What was checked, in words. */
  name: string;
  ok: boolean;
  /** The figures behind it. */
  detail?: string;
}

export interface Row {
  scenario: string;
  faults: string;
  /** Records produced to the log by the scenario (events, labels, predictions). */
  produced: number | null;
  /** Goal 0: records neither applied nor dead-lettered with a reason (or joins missing, or log records neither delivered nor counted as dropped). */
  lost: number | null;
  /** Goal 0: records counted twice (feature counts above the reference, joins beyond the pairs, prediction-log records delivered twice). */
  doubled: number | null;
  requests: number | null;
  /** Goal 0. */
  errors5xx: number | null;
  degraded: number | null;
  /** Prediction-log records the service produced, delivered to the topic, and dropped beyond its buffer (counted). */
  log: { produced: number; delivered: number; dropped: number } | null;
  /** The largest memory growth after warm-up among the processes, with its bound. */
  memory: string | null;
  checks: Check[];
  notes: string[];
  seconds: number;
  /** Memory samples by process, [seconds, RSS MiB, retained MiB after a full collection] (the soak). */
  memoryTrace?: Record<string, [number, number, number][]>;
}

export function emptyRow(scenario: string): Row {
  return {
    scenario,
    faults: '',
    produced: null,
    lost: null,
    doubled: null,
    requests: null,
    errors5xx: null,
    degraded: null,
    log: null,
    memory: null,
    checks: [],
    notes: [],
    seconds: 0,
  };
}

/** The goals every row is held to, as checks: no loss, no double count, no 5xx, and its own checks. */
export function goals(row: Row): Check[] {
  const checks: Check[] = [];
  if (row.lost !== null) checks.push({ name: 'records lost = 0', ok: row.lost === 0, detail: String(row.lost) });
  if (row.doubled !== null) checks.push({ name: 'records double-counted = 0', ok: row.doubled === 0, detail: String(row.doubled) });
  if (row.errors5xx !== null) checks.push({ name: '5xx answers = 0', ok: row.errors5xx === 0, detail: String(row.errors5xx) });
  return [...checks, ...row.checks];
}

export const passed = (row: Row) => goals(row).every((c) => c.ok);

const number = (n: number | null) => (n === null ? '—' : n.toLocaleString('en-US'));

const COLUMNS: [string, (row: Row) => string][] = [
  ['scenario', (r) => r.scenario],
  ['faults injected', (r) => r.faults],
  ['records produced', (r) => number(r.produced)],
  ['lost (goal 0)', (r) => number(r.lost)],
  ['double-counted (goal 0)', (r) => number(r.doubled)],
  ['requests', (r) => number(r.requests)],
  ['5xx (goal 0)', (r) => number(r.errors5xx)],
  ['degraded', (r) => number(r.degraded)],
  [
    'log produced / delivered (dropped)',
    (r) =>
      r.log ? `${number(r.log.produced)} / ${number(r.log.delivered)}${r.log.dropped > 0 ? ` (${number(r.log.dropped)})` : ''}` : '—',
  ],
  ['memory growth', (r) => r.memory ?? '—'],
  ['result', (r) => (passed(r) ? 'PASS' : 'FAIL')],
];

/** The table, as a Markdown pipe table (aligned, so that it reads in a terminal too). */
export function table(rows: Row[]): string {
  const cells = [COLUMNS.map(([title]) => title), ...rows.map((row) => COLUMNS.map(([, cell]) => cell(row).replaceAll('|', '/')))];
  const widths = COLUMNS.map((_, c) => Math.max(...cells.map((line) => line[c]!.length)));
  const line = (values: string[]) => `| ${values.map((v, c) => v.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(cells[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

/** Every check of every row, failures first within a row, then the notes. */
export function details(rows: Row[]): string {
  const out: string[] = [];
  for (const row of rows) {
    out.push(`${row.scenario} (${Math.round(row.seconds)} s): ${passed(row) ? 'PASS' : 'FAIL'}`);
    for (const check of [...goals(row)].sort((a, b) => Number(a.ok) - Number(b.ok))) {
      out.push(`  ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}${check.detail ? `: ${check.detail}` : ''}`);
    }
    for (const note of row.notes) out.push(`  note: ${note}`);
  }
  return out.join('\n');
}

export interface RunSummary {
  mode: string;
  command: string;
  started_at: string;
  seconds: number;
  machine: string;
  rows: Row[];
}

/** Written as the project's formatter would (so that `npm run lint` passes on a committed results file). */
async function writeFormatted(path: string, text: string): Promise<void> {
  const options = (await prettier.resolveConfig(path)) ?? {};
  writeFileSync(path, await prettier.format(text, { ...options, filepath: path }));
}

export async function writeResults(path: string, summary: RunSummary): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writeFormatted(`${path}.json`, JSON.stringify(summary));
  const ok = summary.rows.every(passed);
  await writeFormatted(
    `${path}.md`,
    [
      `# Fault-injection suite: last ${summary.mode} run`,
      '',
      `\`${summary.command}\`, started ${summary.started_at}, ${Math.round(summary.seconds)} s, on ${summary.machine}: ` +
        `${ok ? 'every goal met' : 'GOALS MISSED'}.`,
      '',
      table(summary.rows),
      '',
      '```',
      details(summary.rows),
      '```',
      '',
    ].join('\n'),
  );
}
