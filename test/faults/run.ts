/**
 * The fault-injection and soak suite: `npm run test:faults` (full: the soak lasts 30
 * minutes) or `npm run test:faults -- --short` (CI: a few minutes). Runs every scenario
 * against the real broker (KAFKA_BROKERS, with the mock cluster's control channel
 * KAFKA_MOCK_CONTROL for broker faults) and Redis (REDIS_URL), prints one table of figures,
 * writes it to test/faults/results/<mode>.{md,json}, and exits with status 1 if any goal is
 * missed (2 if the suite could not run). See docs/reliability.md.
 *
 * Options: --short; --only <scenario,...> (features, inference, monitor, soak, hostile,
 * security; results are then written under .tmp/ only); --soak-minutes <n>; --seed <n>;
 * --parallel / --serial (whether the soak runs beside the scenarios that do not take brokers
 * down; parallel by default with --short, serial in the full mode, so that the 30-minute soak
 * has the machine to itself).
 */
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { environment, SIZES, uniqueRun, type Context, type Mode } from './lib/context.js';
import { ROOT } from './lib/processes.js';
import { details, emptyRow, passed, table, writeResults, type Row } from './lib/report.js';
import { featurePipelineScenario } from './scenarios/features.js';
import { inferenceScenario } from './scenarios/inference.js';
import { monitorScenario } from './scenarios/monitor.js';
import { soakScenario } from './scenarios/soak.js';
import { hostileInputScenario } from './scenarios/hostile.js';
import { securityScenario } from './scenarios/security.js';

type Scenario = (ctx: Context) => Promise<Row>;

/**
 * `alone`: the scenario takes brokers down (for every client of the cluster), so nothing else
 * runs meanwhile. The others have their own topics, groups, key prefixes and private Redis
 * servers: with --parallel (the default of --short) the soak runs beside the rest.
 */
const SCENARIOS: { id: string; title: string; run: Scenario; alone?: boolean }[] = [
  { id: 'features', title: '1. feature pipeline', run: featurePipelineScenario, alone: true },
  { id: 'inference', title: '2. inference', run: inferenceScenario, alone: true },
  { id: 'monitor', title: '3. monitor', run: monitorScenario },
  { id: 'soak', title: '4. soak', run: soakScenario },
  { id: 'hostile', title: '5. hostile input', run: hostileInputScenario },
  { id: 'security', title: '6. security', run: securityScenario },
];

function parseArgs(argv: string[]) {
  const args = {
    mode: 'full' as Mode,
    only: null as string[] | null,
    soakMinutes: null as number | null,
    seed: 20_261_129,
    parallel: null as boolean | null,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--short') args.mode = 'short';
    else if (arg === '--full') args.mode = 'full';
    else if (arg === '--only') args.only = value().split(',');
    else if (arg === '--soak-minutes') args.soakMinutes = Number(value());
    else if (arg === '--seed') args.seed = Number(value());
    else if (arg === '--parallel') args.parallel = true;
    else if (arg === '--serial') args.parallel = false;
    else
      throw new Error(
        `unknown option ${arg} (options: --short, --full, --only <ids>, --soak-minutes <n>, --seed <n>, --parallel, --serial)`,
      );
  }
  for (const id of args.only ?? []) {
    if (!SCENARIOS.some((s) => s.id === id)) throw new Error(`unknown scenario ${id} (known: ${SCENARIOS.map((s) => s.id).join(', ')})`);
  }
  return args;
}

async function runScenario(scenario: (typeof SCENARIOS)[number], base: Omit<Context, 'defer'>): Promise<Row> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const ctx: Context = { ...base, defer: (cleanup) => cleanups.push(cleanup) };
  const started = Date.now();
  let row: Row;
  try {
    row = await scenario.run(ctx);
  } catch (error) {
    row = emptyRow(scenario.title);
    row.faults = 'did not complete';
    row.checks.push({ name: 'the scenario ran to its verdict', ok: false, detail: (error as Error).stack ?? String(error) });
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => base.log(`clean-up failed: ${(error as Error).message}`));
    }
  }
  row.seconds = (Date.now() - started) / 1000;
  return row;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const env = environment();
  if ('missing' in env) {
    console.error(`test:faults: ${env.missing}`);
    return 2;
  }
  const sizes = { ...SIZES[args.mode] };
  if (args.soakMinutes !== null) {
    sizes.soakMs = args.soakMinutes * 60_000;
    sizes.soakWarmupMs = Math.min(sizes.soakWarmupMs, sizes.soakMs / 3);
  }
  const startedAt = new Date();
  const log = (message: string) => console.log(`[${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)} s] ${message}`);
  const base = { mode: args.mode, sizes, ...env, seed: args.seed, log, name: uniqueRun };
  const chosen = SCENARIOS.filter((s) => !args.only || args.only.includes(s.id));
  const byId = new Map<string, Row>();
  const runOne = async (scenario: (typeof SCENARIOS)[number]) => {
    log(`${scenario.title}: starting`);
    const row = await runScenario(scenario, base);
    log(`${scenario.title}: ${passed(row) ? 'PASS' : 'FAIL'} (${row.seconds.toFixed(0)} s)`);
    byId.set(scenario.id, row);
  };
  for (const scenario of chosen.filter((s) => s.alone)) await runOne(scenario);
  const rest = chosen.filter((s) => !s.alone);
  if (args.parallel ?? args.mode === 'short') {
    // Two lanes: the soak, and the others one after the other.
    const soak = rest.filter((s) => s.id === 'soak');
    const others = rest.filter((s) => s.id !== 'soak');
    await Promise.all([
      (async () => {
        for (const s of soak) await runOne(s);
      })(),
      (async () => {
        for (const s of others) await runOne(s);
      })(),
    ]);
  } else {
    for (const scenario of rest) await runOne(scenario);
  }
  const rows = chosen.map((s) => byId.get(s.id)!);

  const command = `npm run test:faults${args.mode === 'short' ? ' -- --short' : ''}${args.only ? ` (--only ${args.only.join(',')})` : ''}`;
  const summary = {
    mode: args.mode,
    command,
    started_at: startedAt.toISOString(),
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    rows,
  };
  const resultsFile = args.only ? join(ROOT, '.tmp', 'faults', args.mode) : join(ROOT, 'test', 'faults', 'results', args.mode);
  await writeResults(resultsFile, summary);
  console.log(`\n${table(rows)}\n\n${details(rows)}\n\nresults: ${resultsFile}.md`);
  const ok = rows.every(passed);
  console.log(
    ok
      ? 'every goal met'
      : `goals missed in: ${rows
          .filter((r) => !passed(r))
          .map((r) => r.scenario)
          .join(', ')}`,
  );
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`test:faults: ${(error as Error).stack ?? String(error)}`);
    process.exit(2);
  },
);
