/**
 * Feature pipeline benchmark, on the real broker and Redis (KAFKA_BROKERS, REDIS_URL):
 *   npm run bench:features [-- --events 80000 --users 20000 --rounds 3]
 * 1. throughput: the raw kafkajs `eachBatch` consume rate of a topic (the ceiling) next to
 *    the rate at which one pipeline applies the same topic to Redis, and their ratio, in
 *    `--rounds` rounds alternating the two (medians, and each round's figures);
 * 2. freshness at a steady rate: p50/p99 of the lag from event time to readable in Redis,
 *    over the whole run and after its first 5 s (a new pipeline's warm-up: every entity is
 *    loaded from the store once, the code is compiled);
 * 3. Redis bytes per entity (MEMORY USAGE of the entities' keys), and the pipeline's heap per
 *    entity it keeps in memory once caught up: its own estimate and what it frees when it stops.
 * Prints a report and writes it to bench/results/features.json.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { benchTransactions } from './transactions.js';
import { startFeaturePipeline } from '../services/features/src/index.js';
import {
  createLogger,
  createRandom,
  createRegistry,
  fraud,
  KafkaEventLog,
  RedisOnlineStore,
  type OutgoingRecord,
} from '../shared/src/index.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '80000' },
    users: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '15' },
    // The pipeline's interval between flushes while it is behind (its default when unset).
    'backlog-flush-ms': { type: 'string' },
    // The pipeline's interval between flushes (FLUSH_INTERVAL) and the consumer's longest wait
    // for a fetch (KAFKA_FETCH_MAX_WAIT): their defaults when unset.
    'flush-ms': { type: 'string' },
    'fetch-wait-ms': { type: 'string' },
    // Rounds of the throughput measurement (raw, then the pipeline, alternating): medians reported.
    rounds: { type: 'string', default: '3' },
  },
});
const brokers = process.env.KAFKA_BROKERS?.split(',');
const redisUrl = process.env.REDIS_URL;
if (!brokers || !redisUrl) throw new Error('set KAFKA_BROKERS and REDIS_URL (see deploy/local/README.md)');
const EVENTS = Number(args.events);
const USERS = Number(args.users);
const ROUNDS = Number(args.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a whole number above 0 (got "${args.rounds}")`);
const run = `bench-${Date.now().toString(36)}`;
const eventLog = new KafkaEventLog({
  brokers,
  clientId: run,
  sessionTimeout: 6_000,
  maxWaitTimeInMs: args['fetch-wait-ms'] === undefined ? undefined : Number(args['fetch-wait-ms']),
});
const flushIntervalMs = args['flush-ms'] === undefined ? undefined : Number(args['flush-ms']);
const store = new RedisOnlineStore({ url: redisUrl, keyPrefix: `${run}:` });
// The steady phase's own keys: on the first phase's, its events would be skipped as already
// applied (its partitions' offsets are below those the first phase stored for the same entities).
const steadyStore = new RedisOnlineStore({ url: redisUrl, keyPrefix: `${run}-steady:` });
const logger = createLogger('bench', 'warn');
const random = createRandom(3);

function events(count: number, start: number, spreadMs: number): OutgoingRecord[] {
  return benchTransactions(
    random,
    count,
    USERS,
    (i) => `${run}-${start}-${i}`,
    (i) => start + Math.floor((i / count) * spreadMs),
  );
}

/** Heap in use after a full collection (V8's `gc`, exposed here for the measurement). */
v8.setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  collect();
  return v8.getHeapStatistics().used_heap_size;
};

const waitUntil = async (check: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

// 1. Throughput on a topic filled beforehand.
const topic = `${run}-transactions`;
const records = events(EVENTS, Date.now() - 30 * 60_000, 30 * 60_000);
for (let i = 0; i < records.length; i += 5_000) await eventLog.publish(topic, records.slice(i, i + 5_000));
const bytes = records.reduce((sum, r) => sum + r.value.length, 0);
records.length = 0; // on the topic now; not kept in the heap of the steady phase

/** A pipeline of the example on the bench's event log, with the flush interval given to the bench. */
const startPipeline = (
  pipelineStore: RedisOnlineStore,
  of: ReturnType<typeof fraud.fraudExample>,
  groupId: string,
  registry: ReturnType<typeof createRegistry>,
  backlogFlushIntervalMs?: number,
) =>
  startFeaturePipeline({
    eventLog,
    store: pipelineStore,
    sources: of.sources,
    groups: of.groups,
    deadLetterTopic: `${run}-dead-letter`,
    allowedLatenessMs: 5 * 60_000,
    groupId,
    registry,
    logger,
    backlogFlushIntervalMs,
    flushIntervalMs,
  });

/** The raw kafkajs `eachBatch` consume rate of the topic, from its start, in a group of its own (events/s). */
async function rawConsume(round: number): Promise<number> {
  let raw = 0;
  let rawStart = 0;
  let rawEnd = 0;
  const rawConsumer = await eventLog.subscribe({
    groupId: `${run}-raw-r${round}`,
    topics: [topic],
    fromBeginning: true,
    eachBatch: async (batch) => {
      if (raw === 0) rawStart = performance.now();
      raw += batch.records.length;
      if (raw >= EVENTS) rawEnd = performance.now();
    },
  });
  await waitUntil(() => raw >= EVENTS, 120_000);
  await rawConsumer.stop();
  return EVENTS / ((rawEnd - rawStart) / 1000);
}

const example = fraud.fraudExample({ transactions: topic, labelledTransactions: `${run}-labelled` });
const gauge = async (registry: ReturnType<typeof createRegistry>, name: string) =>
  ((await registry.getSingleMetric(name)?.get())?.values ?? []).reduce((sum, v) => sum + v.value, 0);

/**
 * One pipeline applying the topic from its start to Redis (a group and keys of its own, so that
 * no round finds another's states): its rate, its CPU, and the keyed state it holds once caught
 * up (its estimate, and the heap it frees when it stops: it drops its state).
 */
async function catchUp(round: number) {
  const registry = createRegistry({ defaultMetrics: false });
  const counted = async () => {
    const text = (await registry.getSingleMetricAsString('tributary_pipeline_events_total')) ?? '';
    return [...text.matchAll(/outcome="(?:applied|duplicate|dead_lettered|replayed)"\} (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
  };
  let applied = 0;
  let pipelineStart = 0;
  const poll = setInterval(() => {
    void counted().then((n) => {
      if (n > 0 && pipelineStart === 0) pipelineStart = performance.now();
      applied = n;
    });
  }, 2);
  const roundStore = round === 0 ? store : new RedisOnlineStore({ url: redisUrl!, keyPrefix: `${run}-r${round}:` });
  const pipelineCpu0 = process.cpuUsage();
  const pipeline = await startPipeline(
    roundStore,
    example,
    `${run}-features-r${round}`,
    registry,
    args['backlog-flush-ms'] === undefined ? undefined : Number(args['backlog-flush-ms']),
  );
  await waitUntil(() => applied >= EVENTS, 300_000);
  await pipeline.flush();
  const pipelineEnd = performance.now();
  const pipelineCpu = process.cpuUsage(pipelineCpu0);
  clearInterval(poll);
  const cachedEntities = await gauge(registry, 'tributary_pipeline_cached_entities');
  const cacheEstimateBytes = await gauge(registry, 'tributary_pipeline_cache_bytes');
  const heapWithState = heapAfterGc();
  await pipeline.stop();
  const heapFreed = heapWithState - heapAfterGc();
  if (roundStore !== store) await roundStore.close();
  return {
    eventsPerS: EVENTS / ((pipelineEnd - pipelineStart) / 1000),
    // CPU time of this process over wall time while the pipeline ran (1 = one core busy).
    cpuShare: (pipelineCpu.user + pipelineCpu.system) / 1000 / (pipelineEnd - pipelineStart),
    cpuUsPerEvent: (pipelineCpu.user + pipelineCpu.system) / EVENTS,
    cachedEntities,
    cacheEstimateBytesPerEntity: cacheEstimateBytes / Math.max(1, cachedEntities),
    heapBytesPerEntity: heapFreed / Math.max(1, cachedEntities),
  };
}

// Rounds alternating the two (the machine's speed moves from second to second): medians.
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const rounds: { raw: number; pipeline: Awaited<ReturnType<typeof catchUp>> }[] = [];
for (let round = 0; round < ROUNDS; round++) rounds.push({ raw: await rawConsume(round), pipeline: await catchUp(round) });
const rawRate = median(rounds.map((r) => r.raw));
const pipelineRate = median(rounds.map((r) => r.pipeline.eventsPerS));
const catchingUp = (of: (p: Awaited<ReturnType<typeof catchUp>>) => number) => median(rounds.map((r) => of(r.pipeline)));

// 2. Freshness at a steady rate, on a second topic.
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const steadyTopic = `${run}-steady`;
const steady = fraud.fraudExample({ transactions: steadyTopic, labelledTransactions: `${run}-labelled` });
const steadyRegistry = createRegistry({ defaultMetrics: false });
/** The steady load, from another process, so that it does not compete with what it measures. */
const publishSteady = () =>
  promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('./publish-steady.ts', import.meta.url)),
      steadyTopic,
      String(rate),
      String(seconds),
      String(USERS),
    ],
    { env: process.env, encoding: 'utf8' },
  );
await eventLog.publish(steadyTopic, events(10, Date.now(), 1));
const steadyPipeline = await startPipeline(steadyStore, steady, `${run}-steady`, steadyRegistry);
await new Promise((resolve) => setTimeout(resolve, 4_000)); // the group joins
const steadyCpu0 = process.cpuUsage();
const steadyStart = performance.now();
// Stalls of the pipeline's event loop (GC pauses, long synchronous work) delay every event behind them.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
// The freshness histogram at the end of the warm-up: the figures after warm-up are those of
// the rest of the run (the difference of the two snapshots).
const warmupSeconds = Math.min(5, seconds / 3);
let warm: Awaited<ReturnType<typeof steadyRegistry.getMetricsAsJSON>> | null = null;
// The CPU after warm-up too (the JIT's first seconds cost more per event).
let warmCpu: NodeJS.CpuUsage | null = null;
const warmTimer = setTimeout(() => {
  warmCpu = process.cpuUsage();
  // A copy: a counter's values in it are the live objects.
  void steadyRegistry.getMetricsAsJSON().then((metrics) => (warm = structuredClone(metrics)));
}, warmupSeconds * 1000);
const publisher = await publishSteady();
const sent = Number(/sent (\d+)/.exec(publisher.stdout)?.[1] ?? 0);
const steadyCpu = process.cpuUsage(steadyCpu0);
// This process's CPU time over wall time at the steady rate (1 = one core busy), and per event.
const steadyCpuShare = (steadyCpu.user + steadyCpu.system) / 1000 / (performance.now() - steadyStart);
const steadyCpuPerEvent = (steadyCpu.user + steadyCpu.system) / Math.max(1, sent);
loopDelay.disable();
await new Promise((resolve) => setTimeout(resolve, 1_000));
const steadyMetrics = await steadyRegistry.getMetricsAsJSON();
const afterWarmupCpu = warmCpu ? process.cpuUsage(warmCpu) : null;
await steadyPipeline.stop();
clearTimeout(warmTimer);

// The delivery lag beneath the freshness: a plain consumer of the same topic, in its own process,
// under the same load once the pipeline has stopped (beside it, its own CPU, about a third of a
// core here, slowed the pipeline it was to explain).
const deliveryLag = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    fileURLToPath(new URL('./delivery-lag.ts', import.meta.url)),
    steadyTopic,
    `${run}-delivery-lag`,
    ...(args['fetch-wait-ms'] === undefined ? [] : [args['fetch-wait-ms']]),
  ],
  { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] },
);
let deliveryOutput = '';
deliveryLag.stdout.setEncoding('utf8').on('data', (chunk: string) => (deliveryOutput += chunk));
const deliveryDone = new Promise<void>((resolve) => deliveryLag.on('exit', () => resolve()));
await new Promise((resolve) => setTimeout(resolve, 4_000)); // the group joins
await publishSteady();
await deliveryDone;
const delivery = JSON.parse(deliveryOutput.split('\n').find((line) => line.startsWith('{')) ?? '{}') as {
  p50_ms?: number;
  p99_ms?: number;
};
type Metrics = typeof steadyMetrics;
const bucketsOf = (metrics: Metrics, name: string) =>
  (metrics.find((m) => m.name === name)!.values as { labels: { le?: string | number }; value: number; metricName?: string }[])
    .filter((v) => v.metricName?.endsWith('_bucket'))
    .map((v) => ({ le: Number(v.labels.le), count: v.value }));
/**
 * The upper bound of the bucket holding quantile `q` of a histogram of the steady pipeline
 * (of what it observed after the snapshot `since`, when given).
 */
const histogramQuantile = (name: string, q: number, since?: Metrics | null) => {
  const before = since ? bucketsOf(since, name) : null;
  const buckets = bucketsOf(steadyMetrics, name).map((b, i) => ({ le: b.le, count: b.count - (before?.[i]?.count ?? 0) }));
  const total = buckets[buckets.length - 1]!.count;
  return buckets.find((b) => b.count >= q * total)?.le ?? Infinity;
};
const quantile = (q: number, since?: Metrics | null) => histogramQuantile('tributary_feature_freshness_seconds', q, since);
const appliedEvents = (metrics: Metrics | null) =>
  (metrics?.find((m) => m.name === 'tributary_pipeline_events_total')?.values ?? [])
    .filter((v) => v.labels.outcome === 'applied')
    .reduce((sum, v) => sum + v.value, 0);
const appliedAfterWarmup = appliedEvents(steadyMetrics) - appliedEvents(warm);
const steadyCpuPerEventAfterWarmup =
  afterWarmupCpu && appliedAfterWarmup > 0 ? Math.round((afterWarmupCpu.user + afterWarmupCpu.system) / appliedAfterWarmup) : null;

// 3. Redis bytes per entity.
const usage = async (key: string) => Number(await store.client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
const allKeys = await store.client.keys(`${run}*`);
// The entities' keys (the partitions' event-id logs apart), a sample of each kind.
const entityKeys = allKeys.filter((k) => !k.includes(':event-ids:'));
const keys = entityKeys.slice(0, 2_000);
let memory = 0;
for (const key of keys) memory += await usage(key);
const userKeys = keys.filter((k) => k.includes('{user_id:'));
let userMemory = 0;
for (const key of userKeys) userMemory += await usage(key);
// Merchants of the steady phase: the hottest entities (each sees rate / 2,000 events a second).
const merchantKeys = entityKeys
  .filter((k) => k.startsWith(`${run}-steady:`) && k.includes('{merchant_id:') && k.endsWith(steady.groups[1]!.id))
  .slice(0, 500);
let merchantMemory = 0;
for (const key of merchantKeys) merchantMemory += await usage(key);
let eventIdLogMemory = 0;
for (const key of allKeys.filter((k) => k.includes(':event-ids:'))) eventIdLogMemory += await usage(key);

const result = {
  measured_at: new Date().toISOString(),
  events: EVENTS,
  users: USERS,
  average_event_bytes: Math.round(bytes / EVENTS),
  rounds: ROUNDS,
  // Medians of the rounds; the ratio is the median of each round's ratio.
  raw_consume_events_per_s: Math.round(rawRate),
  pipeline_events_per_s: Math.round(pipelineRate),
  ratio: Number(median(rounds.map((r) => r.pipeline.eventsPerS / r.raw)).toFixed(3)),
  raw_consume_events_per_s_rounds: rounds.map((r) => Math.round(r.raw)),
  pipeline_events_per_s_rounds: rounds.map((r) => Math.round(r.pipeline.eventsPerS)),
  // CPU time of this process over wall time while the pipeline ran (1 = one core busy).
  pipeline_cpu_share: Number(catchingUp((p) => p.cpuShare).toFixed(2)),
  pipeline_cpu_us_per_event: Math.round(catchingUp((p) => p.cpuUsPerEvent)),
  pipeline_cpu_us_per_event_rounds: rounds.map((r) => Math.round(r.pipeline.cpuUsPerEvent)),
  // Its keyed state once caught up: the entities in memory, the heap per entity the pipeline
  // estimates (bounding it by FEATURE_CACHE_MB) and the heap it freed per entity when it stopped.
  pipeline_cached_entities: catchingUp((p) => p.cachedEntities),
  pipeline_cache_estimate_bytes_per_entity: Math.round(catchingUp((p) => p.cacheEstimateBytesPerEntity)),
  pipeline_heap_bytes_per_entity: Math.round(catchingUp((p) => p.heapBytesPerEntity)),
  steady_rate_events_per_s: rate,
  steady_events_sent: sent,
  steady_publisher: publisher.stdout.trim(),
  steady_pipeline_cpu_share: Number(steadyCpuShare.toFixed(2)),
  steady_pipeline_cpu_us_per_event: Math.round(steadyCpuPerEvent),
  steady_pipeline_cpu_us_per_event_after_warmup: steadyCpuPerEventAfterWarmup,
  freshness_p50_le_seconds: quantile(0.5),
  freshness_p99_le_seconds: quantile(0.99),
  freshness_warmup_seconds: warmupSeconds,
  freshness_after_warmup_p50_le_seconds: quantile(0.5, warm),
  freshness_after_warmup_p99_le_seconds: quantile(0.99, warm),
  // Where the tail comes from: the delivery lag of a plain consumer of the same topic (event
  // time to its eachBatch), a flush's write and commit, and stalls of the event loop.
  steady_plain_consumer_delivery_p50_ms: delivery.p50_ms ?? null,
  steady_plain_consumer_delivery_p99_ms: delivery.p99_ms ?? null,
  steady_flush_p50_le_seconds: histogramQuantile('tributary_pipeline_flush_duration_seconds', 0.5),
  steady_flush_p99_le_seconds: histogramQuantile('tributary_pipeline_flush_duration_seconds', 0.99),
  steady_event_loop_delay_p99_ms: Number((loopDelay.percentile(99) / 1e6).toFixed(1)),
  steady_event_loop_delay_max_ms: Number((loopDelay.max / 1e6).toFixed(1)),
  redis_bytes_per_entity_key: Math.round(memory / Math.max(1, keys.length)),
  redis_bytes_per_user_key: Math.round(userMemory / Math.max(1, userKeys.length)),
  redis_bytes_per_merchant_key: Math.round(merchantMemory / Math.max(1, merchantKeys.length)),
  redis_bytes_event_id_logs: eventIdLogMemory,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/features.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');

const all = await store.client.keys(`${run}*`);
for (let i = 0; i < all.length; i += 1000) await store.client.del(...all.slice(i, i + 1000));
await store.close();
await steadyStore.close();
await eventLog.close();
