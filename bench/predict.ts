/**
 * Prediction benchmark, on the real broker and Redis (KAFKA_BROKERS, REDIS_URL):
 *   npm run bench:predict [-- --users 100000 --seconds 10 --connections 50 --rounds 2 --fixed-rounds 3]
 * 1. seeds the online store with the features of `--users` card holders (and 2,000
 *    merchants) through the feature pipeline's own processor;
 * 2. starts the inference service (its own process, as `npm start -w services/inference`)
 *    and the ceiling (bench/predict/ceiling.ts: the same Fastify route, validation and
 *    serialisation, answering a constant) side by side;
 * 3. measures, alternating the two: the highest rate with wrk (random users) and the CPU
 *    time per request meanwhile of each server's process and of Redis, then p50/p99
 *    latency with hey at 1,000 req/s and at half of the prediction route's maximum, in
 *    alternating rounds reported by their medians;
 * 4. profiles the service under wrk (--cpu-prof) and reports where the time goes; then both
 *    servers at 1,000 req/s (hey), the p99 goal's rate.
 * Prints a report and writes it to bench/results/predict.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { redisCpuSeconds } from './redis-cpu.js';
import { asLogRecords, benchTransactions } from './transactions.js';
import { hey, wrk } from './predict/load.js';
import { summariseProfile } from './predict/profile.js';
import { createFeatureProcessor } from '../services/features/src/feature-processor.js';
import { createRandom, fraud, RedisOnlineStore } from '../shared/src/index.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    'fixed-rounds': { type: 'string', default: '3' },
  },
});
for (const [name, value] of Object.entries(args)) {
  if (!/^[1-9]\d*$/.test(value)) throw new Error(`--${name} must be a whole number above 0 (got "${value}")`);
}
const brokers = process.env.KAFKA_BROKERS;
const redisUrl = process.env.REDIS_URL;
if (!brokers || !redisUrl) throw new Error('set KAFKA_BROKERS and REDIS_URL (see deploy/local/README.md)');
// Said before the seeding, not after it as a spawn error.
for (const tool of ['wrk', 'hey']) {
  if (spawnSync(tool, ['-h']).error) throw new Error(`${tool} is not installed (Debian: apt-get install -y wrk hey)`);
}
const USERS = Number(args.users);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const run = `bench-predict-${Date.now().toString(36)}`;
const root = fileURLToPath(new URL('..', import.meta.url));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

// 1. Seed: three transactions per card holder over the last hour, through the pipeline's processor.
const store = new RedisOnlineStore({ url: redisUrl, keyPrefix: `${run}:` });
const example = fraud.fraudExample({ transactions: `${run}-transactions` });
const processor = createFeatureProcessor({ store, source: example.sources[0]!, groups: example.groups, allowedLatenessMs: 5 * 60_000 });
processor.open(`${run}-transactions`, 0, -Infinity);
const seedStart = performance.now();
const now = Date.now();
const EVENTS = USERS * 3;
const random = createRandom(5);
for (let from = 0; from < EVENTS; from += 10_000) {
  const count = Math.min(10_000, EVENTS - from);
  const outgoing = benchTransactions(
    random,
    count,
    USERS,
    (i) => `${run}-${from + i}`,
    (i) => now - 3_600_000 + Math.floor(((from + i) / EVENTS) * 3_600_000),
  );
  const records = asLogRecords(`${run}-transactions`, outgoing, now, from);
  await processor.process({ topic: `${run}-transactions`, partition: 0, records });
  await processor.flush();
}
const seedSeconds = (performance.now() - seedStart) / 1000;

// 2. The two servers.
const servers = new Set<ChildProcess>();
// A bench that fails midway (a server not ready, a load generator failing) stops its servers too.
process.on('exit', () => {
  for (const server of servers) if (server.exitCode === null) server.kill('SIGKILL');
});
function start(name: string, argv: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  servers.add(child);
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${name} exited (${code ?? signal})`);
  });
  return child;
}
async function ready(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
let stopping = false;
const SERVICE_PORT = 3911;
const CEILING_PORT = 3912;
const serviceEnv = {
  HOST: '127.0.0.1',
  PORT: String(SERVICE_PORT),
  LOG_LEVEL: 'warn',
  REDIS_KEY_PREFIX: `${run}:`,
  TOPIC_TRANSACTIONS: `${run}-transactions`,
  TOPIC_PREDICTIONS: `${run}-predictions`,
};
const startService = (extra: string[] = []) =>
  start('inference', [...extra, '--import', 'tsx', 'services/inference/src/main.ts'], serviceEnv);
let service = startService();
const ceiling = start('ceiling', ['--import', 'tsx', 'bench/predict/ceiling.ts', String(CEILING_PORT)], {});
const serviceUrl = `http://127.0.0.1:${SERVICE_PORT}`;
const ceilingUrl = `http://127.0.0.1:${CEILING_PORT}`;
await Promise.all([ready(serviceUrl), ready(ceilingUrl)]);

// 3. Maximum rate, alternating; then fixed rates.
await wrk(`${serviceUrl}/v1/predict`, 3, CONNECTIONS); // warm-up (JIT, connections)
await wrk(`${ceilingUrl}/v1/predict`, 3, CONNECTIONS);
// CPU time of a process (all its threads) from /proc, and of Redis from INFO, in seconds: on
// two shared cores the machine's CPU, not one thread, bounds the rate, so the CPU per request
// is the firmer figure.
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
function cpuSeconds(statFile: string): number {
  const stat = readFileSync(statFile, 'utf8');
  // The fields after the command name (which may hold spaces) start at its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
}
const processCpuSeconds = (pid: number | undefined) => cpuSeconds(`/proc/${pid}/stat`);
/** The main thread's alone: the event loop (the other threads: workers and V8's collector helpers). */
const eventLoopCpuSeconds = (pid: number | undefined) => cpuSeconds(`/proc/${pid}/task/${pid}/stat`);
const usPerRequest = (seconds: number, requests: number) => Number(((seconds * 1e6) / requests).toFixed(1));
/** The highest rate with wrk, and the CPU per request of the server and of Redis meanwhile (µs). */
async function measureMax(url: string, server: ChildProcess) {
  const [server0, redis0] = [processCpuSeconds(server.pid), await redisCpuSeconds(store.client)];
  const load = await wrk(url, SECONDS, CONNECTIONS);
  const [server1, redis1] = [processCpuSeconds(server.pid), await redisCpuSeconds(store.client)];
  return {
    ...load,
    cpuUsPerRequest: usPerRequest(server1 - server0, load.requests),
    redisCpuUsPerRequest: usPerRequest(redis1 - redis0, load.requests),
  };
}
type MaxRun = Awaited<ReturnType<typeof measureMax>>;
const maxima: { service: MaxRun[]; ceiling: MaxRun[] } = { service: [], ceiling: [] };
for (let round = 0; round < Number(args.rounds); round++) {
  maxima.ceiling.push(await measureMax(`${ceilingUrl}/v1/predict`, ceiling));
  maxima.service.push(await measureMax(`${serviceUrl}/v1/predict`, service));
}
const serviceCpu = median(maxima.service.map((r) => r.cpuUsPerRequest));
const ceilingCpu = median(maxima.ceiling.map((r) => r.cpuUsPerRequest));
const serviceMax = median(maxima.service.map((r) => r.requestsPerSecond));
const ceilingMax = median(maxima.ceiling.map((r) => r.requestsPerSecond));
const half = Math.max(100, Math.round(serviceMax / 2 / 100) * 100);
// A p99 of one 8 s run at a fixed rate moves 2-5x between runs on these shared machines, so each
// rate is measured in `--fixed-rounds` rounds, the two servers alternating, and reported by medians.
// With each run, the server's CPU per request: its event loop's and its other threads' (the
// prediction log's worker, V8's collector helpers), which at a fixed rate share the cores with it.
async function measureFixed(url: string, server: ChildProcess, rate: number) {
  const [all0, loop0] = [processCpuSeconds(server.pid), eventLoopCpuSeconds(server.pid)];
  const load = await hey(url, SECONDS, rate);
  const [all1, loop1] = [processCpuSeconds(server.pid), eventLoopCpuSeconds(server.pid)];
  return {
    ...load,
    eventLoopCpuUsPerRequest: usPerRequest(loop1 - loop0, load.requests),
    otherThreadsCpuUsPerRequest: usPerRequest(all1 - all0 - (loop1 - loop0), load.requests),
  };
}
type FixedRun = Awaited<ReturnType<typeof measureFixed>>;
const fixedRuns = {
  at_1000: { service: [] as FixedRun[], ceiling: [] as FixedRun[] },
  at_half_max: { service: [] as FixedRun[], ceiling: [] as FixedRun[] },
};
for (let round = 0; round < Number(args['fixed-rounds']); round++) {
  for (const [rate, runs] of [
    [1000, fixedRuns.at_1000],
    [half, fixedRuns.at_half_max],
  ] as const) {
    runs.ceiling.push(await measureFixed(`${ceilingUrl}/v1/predict`, ceiling, rate));
    runs.service.push(await measureFixed(`${serviceUrl}/v1/predict`, service, rate));
  }
}
/** A fixed rate's rounds: each server's median p50, p99 and CPU per request, the p99s' ratio, and the ratio of each round. */
function fixedRate(runs: { service: FixedRun[]; ceiling: FixedRun[] }) {
  const summary = (of: FixedRun[]) => ({
    p50Ms: median(of.map((r) => r.p50Ms)),
    p99Ms: median(of.map((r) => r.p99Ms)),
    requestsPerSecond: median(of.map((r) => r.requestsPerSecond)),
    eventLoopCpuUsPerRequest: median(of.map((r) => r.eventLoopCpuUsPerRequest)),
    otherThreadsCpuUsPerRequest: median(of.map((r) => r.otherThreadsCpuUsPerRequest)),
    failed: of.reduce((sum, r) => sum + r.failed, 0),
  });
  const [service, ceiling] = [summary(runs.service), summary(runs.ceiling)];
  return {
    service,
    ceiling,
    p99_ratio: Number((service.p99Ms / ceiling.p99Ms).toFixed(2)),
    p99_ratio_per_round: runs.service.map((r, i) => Number((r.p99Ms / runs.ceiling[i]!.p99Ms).toFixed(2))),
    runs,
  };
}

// The batch sizes the service saw (dynamic batching).
const batchMetrics = (await (await fetch(`${serviceUrl}/metrics`)).text())
  .split('\n')
  .filter((line) => line.startsWith('tributary_model_batch_rows_bucket') || line.startsWith('tributary_model_batch_rows_count'));

// 4. Profile of the service under wrk.
stopping = true;
const exited = (child: ChildProcess) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
service.kill('SIGINT');
await exited(service);
const profileDir = mkdtempSync(join(tmpdir(), 'tributary-predict-profile-'));
stopping = false;
service = startService(['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
await ready(serviceUrl);
await wrk(`${serviceUrl}/v1/predict`, 3, CONNECTIONS);
const profiled = await wrk(`${serviceUrl}/v1/predict`, SECONDS, CONNECTIONS);
stopping = true;
service.kill('SIGINT');
ceiling.kill('SIGINT');
await Promise.all([exited(service), exited(ceiling)]);
/** The summaries of the profiles in `dir`, the largest (the main thread's) first; worker threads write their own. */
const summaries = (dir: string, requests: number) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => ({ file: join(dir, f), ...summariseProfile(join(dir, f), requests) }))
    .sort((a, b) => b.busyMs - a.busyMs);
const profileSummaries = summaries(profileDir, profiled.requests + 3 * profiled.requestsPerSecond);

// 5. Profiles of both servers at 1,000 req/s, the p99 goal's rate, where a turn of the event
// loop mostly carries one request: what the service spends beyond the ceiling there.
const profileAt1000 = async (name: string, url: string, launch: (extra: string[]) => ChildProcess) => {
  const dir = mkdtempSync(join(tmpdir(), `tributary-predict-profile-1000-${name}-`));
  stopping = false;
  const child = launch(['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  await ready(url);
  const warm = await hey(`${url}/v1/predict`, 2, 1000);
  const load = await hey(`${url}/v1/predict`, SECONDS, 1000);
  stopping = true;
  child.kill('SIGINT');
  await exited(child);
  const [main] = summaries(dir, warm.requests + load.requests);
  return { p99_ms: load.p99Ms, busy_ms: main!.busyMs, parts: main!.parts.slice(0, 14) };
};
const profile1000 = {
  service: await profileAt1000('service', serviceUrl, startService),
  ceiling: await profileAt1000('ceiling', ceilingUrl, (extra) =>
    start('ceiling', [...extra, '--import', 'tsx', 'bench/predict/ceiling.ts', String(CEILING_PORT)], {}),
  ),
};

const result = {
  measured_at: new Date().toISOString(),
  users: USERS,
  seed_seconds: Number(seedSeconds.toFixed(1)),
  load: `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s (random users), hey -c10 -z${SECONDS}s at fixed rates (one body), ${args['fixed-rounds']} alternating rounds`,
  max_requests_per_s: {
    service: Math.round(serviceMax),
    ceiling: Math.round(ceilingMax),
    ratio: Number((serviceMax / ceilingMax).toFixed(3)),
  },
  max_runs: maxima,
  // Process CPU (every thread) per request at the highest rate, medians of the rounds.
  cpu_us_per_request: {
    service: serviceCpu,
    ceiling: ceilingCpu,
    ratio: Number((serviceCpu / ceilingCpu).toFixed(2)),
    redis_for_service: median(maxima.service.map((r) => r.redisCpuUsPerRequest)),
  },
  // Medians of the rounds at each fixed rate (hey), the servers alternating.
  fixed_rate_1000: fixedRate(fixedRuns.at_1000),
  [`fixed_rate_${half}`]: fixedRate(fixedRuns.at_half_max),
  model_batch_rows: batchMetrics,
  profile: {
    requests_per_s_while_profiled: profiled.requestsPerSecond,
    threads: profileSummaries.map((p) => ({ busy_ms: p.busyMs, parts: p.parts.slice(0, 14) })),
  },
  // The main threads at 1,000 req/s (hey, as the fixed-rate runs), warm-up included.
  profile_at_1000: profile1000,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/predict.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

let cursor = '0';
do {
  const [next, keys] = await store.client.scan(cursor, 'MATCH', `${run}:*`, 'COUNT', 1000);
  if (keys.length > 0) await store.client.del(...keys);
  cursor = next;
} while (cursor !== '0');
await store.close();
