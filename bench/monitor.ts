/**
 * Monitor benchmark, on the real broker and Redis (KAFKA_BROKERS, REDIS_URL; KAFKA_MOCK_CONTROL
 * on librdkafka's mock cluster):
 *   npm run bench:monitor [-- --records 200000 --rounds 3 --partitions auto --baseline main]
 * 1. fills fresh `predictions` and `labels` topics with prediction-log records (as the
 *    inference service publishes them) and labels for a share of them, some published
 *    before their prediction, some twice, some for requests that have no prediction;
 * 2. in alternating rounds, each a fresh process and consumer group: the raw kafkajs
 *    `eachBatch` consume rate of both topics (the ceiling), and the rate of one monitor
 *    (startMonitor as services/monitor/src/main.ts runs it, with the Redis join store and a
 *    fresh key prefix): records/s, their ratio, the joins done, CPU per record, memory
 *    (RSS, heap; after a full GC) along the way and at the end, and one scrape's cost;
 *    with `--baseline REF`, also the monitor of git REF (its services/monitor/src) in the
 *    same rounds, for a before/after on the same machine and topics;
 * 3. medians over the rounds, with the machine's load average.
 * The run is written under its record count to bench/results/monitor.json (so the default
 * run and `--records 1000000` sit side by side). `--profile DIR` writes a CPU profile of
 * every round's process to DIR (from its first batch on; `tsx bench/cpu-profile-summary.ts
 * FILE` sums it up) and no results.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import kafkajs from 'kafkajs';
import * as prettier from 'prettier';
import { createRandom, KafkaEventLog, type OutgoingRecord, type ReferenceProfile } from '../shared/src/index.js';
import { createTopic } from '../test/support/topics.js';
import { PredictionTraffic } from './prediction-log.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
    partitions: { type: 'string', default: 'auto' },
    'label-share': { type: 'string', default: '0.5' },
    'early-share': { type: 'string', default: '0.1' },
    'duplicate-share': { type: 'string', default: '0.01' },
    'orphan-share': { type: 'string', default: '0.01' },
    baseline: { type: 'string' },
    profile: { type: 'string' },
  },
});
const brokers = process.env.KAFKA_BROKERS?.split(',');
const redisUrl = process.env.REDIS_URL;
if (!brokers || !redisUrl) throw new Error('set KAFKA_BROKERS and REDIS_URL (see deploy/local/README.md)');
const RECORDS = Number(args.records);
const ROUNDS = Number(args.rounds);
const share = (name: 'label-share' | 'early-share' | 'duplicate-share' | 'orphan-share') => Number(args[name]);
const root = fileURLToPath(new URL('..', import.meta.url));
const run = `bench-monitor-${Date.now().toString(36)}`;
const log = (message: string) => process.stderr.write(`[bench:monitor] ${message}\n`);
const loadBefore = loadavg();
if (args.profile) mkdirSync(args.profile, { recursive: true });

// 1. The topics and their records.
const manifest = JSON.parse(readFileSync(`${root}models/fraud_detector/1/manifest.json`, 'utf8')) as { profile: ReferenceProfile };
const labelsPerPrediction = share('label-share') * (1 + share('duplicate-share') + share('orphan-share'));
const predictions = Math.round(RECORDS / (1 + labelsPerPrediction));
const traffic = new PredictionTraffic(
  {
    run,
    predictions,
    labelShare: share('label-share'),
    earlyShare: share('early-share'),
    duplicateShare: share('duplicate-share'),
    orphanShare: share('orphan-share'),
    start: Date.now() - 50 * 60_000,
    spreadMs: 50 * 60_000,
  },
  createRandom(5),
  manifest.profile,
);
// librdkafka's mock cluster keeps about 5 MB per partition and drops the oldest records
// beyond: unless told, each topic gets the partitions its records need at 4 MB each (4 at least).
const sample = traffic.predictions(0, Math.min(predictions, 1_000));
const predictionBytes = sample.reduce((sum, r) => sum + r.value.length + 40, 0) / sample.length;
const partitionsFor = (bytes: number) => (args.partitions === 'auto' ? Math.max(4, Math.ceil(bytes / 4_000_000)) : Number(args.partitions));
const partitions = {
  predictions: partitionsFor(predictions * predictionBytes),
  labels: partitionsFor(predictions * labelsPerPrediction * 120),
};
const topics = { predictions: `${run}-predictions`, labels: `${run}-labels`, deadLetter: `${run}-dead-letter` };
await createTopic(brokers, topics.predictions, partitions.predictions);
await createTopic(brokers, topics.labels, partitions.labels);
await createTopic(brokers, topics.deadLetter, 4);
const eventLog = new KafkaEventLog({ brokers, clientId: run });
const produceStarted = performance.now();
let bytes = 0;
for (let i = 0; i < predictions; i += 5_000) {
  const chunk = traffic.predictions(i, Math.min(predictions, i + 5_000));
  for (const r of chunk) bytes += r.value.length;
  await eventLog.publish(topics.predictions, chunk);
}
let labels = 0;
let chunk: OutgoingRecord[] = [];
for (const label of traffic.labels()) {
  chunk.push(label);
  if (chunk.length === 5_000) {
    await eventLog.publish(topics.labels, chunk);
    chunk = [];
  }
  labels++;
}
await eventLog.publish(topics.labels, chunk);
await eventLog.close();
// Every record must still be there (the mock cluster drops the oldest beyond its limit).
const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
await admin.connect();
for (const topic of [topics.predictions, topics.labels]) {
  const trimmed = (await admin.fetchTopicOffsets(topic)).filter((p) => p.low !== '0');
  if (trimmed.length > 0)
    throw new Error(`${topic}: the broker dropped the oldest records of ${trimmed.length} partitions; use more --partitions`);
}
await admin.disconnect();
const total = predictions + labels;
log(
  `${predictions} predictions (${Math.round(bytes / predictions)} B each) and ${labels} labels published in ${((performance.now() - produceStarted) / 1000).toFixed(1)} s`,
);

// 2. The rounds.
let baselineSrc: string | undefined;
if (args.baseline) {
  const dir = `${root}bench/.baseline`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['archive', args.baseline, 'services/monitor/src'], { cwd: root });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  baselineSrc = `${dir}/services/monitor/src`;
}

interface Memory {
  rss_mb: number;
  heap_used_mb: number;
  external_mb: number;
}
interface ProcessResult {
  mode: string;
  records: number;
  seconds: number;
  records_per_s: number;
  cpu_us_per_record: number;
  scrape_ms: number;
  memory_at_end: Memory;
  memory_after_gc: Memory | null;
  checkpoints: ({ records: number } & Memory)[];
  counters?: Record<string, number>;
  redis_keys?: number;
  redis_used_memory_delta_mb?: number;
}

const redis = new Redis(redisUrl);
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
/** Deletes a round's join-store keys; returns how many there were. */
async function deleteKeys(prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5_000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

async function consume(kind: 'raw' | 'monitor' | 'baseline', round: number): Promise<ProcessResult> {
  const prefix = `${run}:r${round}-${kind}:`;
  const memoryBefore = kind === 'raw' ? 0 : await usedMemory();
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      `${root}bench/monitor-process.ts`,
      '--mode',
      kind === 'raw' ? 'raw' : 'monitor',
      '--records',
      String(total),
      ...(kind === 'baseline' ? ['--monitor-src', baselineSrc!] : []),
      ...(args.profile ? ['--profile', `${args.profile}/${kind}-r${round}.cpuprofile`] : []),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        TOPIC_PREDICTIONS: topics.predictions,
        TOPIC_LABELS: topics.labels,
        TOPIC_DEAD_LETTER: topics.deadLetter,
        CONSUMER_GROUP_PREFIX: `${run}-r${round}-${kind}`,
        REDIS_KEY_PREFIX: prefix,
        KAFKA_SESSION_TIMEOUT: '6s',
        LOG_LEVEL: 'warn',
      },
    },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (data: string) => (stdout += data));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`${kind} round ${round} exited with ${code}`);
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as ProcessResult;
  if (kind !== 'raw') {
    result.redis_used_memory_delta_mb = Math.round(((await usedMemory()) - memoryBefore) / 2 ** 20);
    result.redis_keys = await deleteKeys(prefix);
  }
  log(
    `round ${round} ${kind}: ${Math.round(result.records_per_s)} records/s, ${result.cpu_us_per_record.toFixed(1)} us CPU/record, ` +
      `RSS ${result.memory_at_end.rss_mb} MB` +
      (result.counters ? `, joins ${result.counters.joined_on_label! + result.counters.joined_on_prediction!}` : ''),
  );
  return result;
}

const kinds = baselineSrc ? (['raw', 'monitor', 'baseline'] as const) : (['raw', 'monitor'] as const);
const results: Record<string, ProcessResult[]> = { raw: [], monitor: [], baseline: [] };
try {
  for (let round = 1; round <= ROUNDS; round++) {
    // The order alternates, so that no kind always runs right after the produce or last.
    const order = round % 2 === 1 ? kinds : [...kinds].reverse();
    for (const kind of order) results[kind]!.push(await consume(kind, round));
  }
} finally {
  if (baselineSrc) rmSync(`${root}bench/.baseline`, { recursive: true, force: true });
  await redis.quit();
}

// 3. Medians.
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round3 = (x: number) => Number(x.toFixed(3));
const summary = (rounds: ProcessResult[]) => {
  const typical = [...rounds].sort((a, b) => a.records_per_s - b.records_per_s)[rounds.length >> 1]!;
  return {
    records_per_s_median: Math.round(median(rounds.map((r) => r.records_per_s))),
    records_per_s_rounds: rounds.map((r) => Math.round(r.records_per_s)),
    cpu_us_per_record_median: round3(median(rounds.map((r) => r.cpu_us_per_record))),
    memory_at_end_median: {
      rss_mb: median(rounds.map((r) => r.memory_at_end.rss_mb)),
      heap_used_mb: median(rounds.map((r) => r.memory_at_end.heap_used_mb)),
    },
    heap_used_after_gc_mb_median: median(rounds.map((r) => r.memory_after_gc?.heap_used_mb ?? NaN)),
    rss_after_gc_mb_median: median(rounds.map((r) => r.memory_after_gc?.rss_mb ?? NaN)),
    scrape_ms_median: round3(median(rounds.map((r) => r.scrape_ms))),
    ...(typical.counters ? { counters: typical.counters } : {}),
    ...(typical.redis_keys !== undefined
      ? { redis_keys_left: typical.redis_keys, redis_used_memory_delta_mb: typical.redis_used_memory_delta_mb }
      : {}),
    ...(typical.counters
      ? {
          checkpoints_of_median_round: typical.checkpoints.map((c) => ({
            records: c.records,
            rss_mb: c.rss_mb,
            heap_used_mb: c.heap_used_mb,
          })),
        }
      : {}),
  };
};
const raw = summary(results.raw!);
const monitor = summary(results.monitor!);
const pairRatio = (kind: 'monitor' | 'baseline') =>
  round3(median(results[kind]!.map((r, i) => r.records_per_s / results.raw![i]!.records_per_s)));
const result = {
  measured_at: new Date().toISOString(),
  command: `npm run bench:monitor -- ${process.argv.slice(2).join(' ')}`.trim(),
  machine: {
    cpus: cpus().length,
    node: process.version,
    load_average_before: loadBefore.map(round3),
    load_average_after: loadavg().map(round3),
  },
  records: total,
  predictions,
  labels,
  partitions,
  average_prediction_bytes: Math.round(bytes / predictions),
  rounds: ROUNDS,
  raw_consume: raw,
  monitor,
  ratio: round3(monitor.records_per_s_median / raw.records_per_s_median),
  ratio_median_of_rounds: pairRatio('monitor'),
  ...(baselineSrc
    ? {
        baseline: { ref: args.baseline, ...summary(results.baseline!), ratio_median_of_rounds: pairRatio('baseline') },
        speedup_vs_baseline: round3(median(results.monitor!.map((r, i) => r.records_per_s / results.baseline![i]!.records_per_s))),
      }
    : {}),
};
console.log(JSON.stringify(result, null, 2));
if (args.profile) {
  log(`CPU profiles in ${args.profile}; no results written`);
} else {
  const file = new URL('./results/monitor.json', import.meta.url);
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { runs?: Record<string, unknown> }) : {};
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const text = JSON.stringify({
    about: 'npm run bench:monitor: one monitor process vs the raw consume rate of the same topics; one entry per record count',
    runs: { ...previous.runs, [String(RECORDS)]: result },
  });
  // Formatted as the repository's other files are (npm run lint checks it).
  const path = fileURLToPath(file);
  writeFileSync(path, await prettier.format(text, { ...(await prettier.resolveConfig(path)), filepath: path }));
}
