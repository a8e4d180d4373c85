/**
 * Where the monitor spends its time, without the broker: the benchmark's prediction-log
 * records and labels go straight to the monitor's batch handler (startMonitor on an event
 * log that only hands over batches), with the Redis join store (REDIS_URL) or the in-memory
 * one (`--join memory`). Prints CPU and wall time per record; `--profile FILE` writes a V8
 * CPU profile of the handling alone (`tsx bench/cpu-profile-summary.ts FILE` sums it up):
 *   tsx bench/profile-monitor.ts [--records 200000] [--batch 900] [--join redis|memory] [--profile FILE] [--monitor-src DIR]
 * (`--monitor-src`: another version's services/monitor/src, e.g. from `git archive`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type * as MonitorModule from '../services/monitor/src/index.js';
import {
  createLogger,
  createRandom,
  createRegistry,
  type EventLog,
  type LogRecord,
  type OutgoingRecord,
  type RecordBatch,
  type ReferenceProfile,
  type SubscribeOptions,
} from '../shared/src/index.js';
import { PredictionTraffic } from './prediction-log.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '900' },
    join: { type: 'string', default: 'redis' },
    profile: { type: 'string' },
    'monitor-src': { type: 'string', default: fileURLToPath(new URL('../services/monitor/src', import.meta.url)) },
  },
});
const { manifestsFrom, MemoryJoinStore, RedisJoinStore, startMonitor } = (await import(
  pathToFileURL(join(args['monitor-src'], 'index.ts')).href
)) as typeof MonitorModule;
const RECORDS = Number(args.records);
const BATCH = Number(args.batch);
const redisUrl = process.env.REDIS_URL;
if (args.join === 'redis' && !redisUrl) throw new Error('set REDIS_URL, or use --join memory');
const run = `profile-monitor-${Date.now().toString(36)}`;
const root = new URL('..', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('models/fraud_detector/1/manifest.json', root), 'utf8')) as { profile: ReferenceProfile };
const predictions = Math.round(RECORDS / 1.51);
const traffic = new PredictionTraffic(
  {
    run,
    predictions,
    labelShare: 0.5,
    earlyShare: 0.1,
    duplicateShare: 0.01,
    orphanShare: 0.01,
    start: Date.now() - 50 * 60_000,
    spreadMs: 50 * 60_000,
  },
  createRandom(5),
  manifest.profile,
);
const asBatches = (topic: string, records: OutgoingRecord[]): RecordBatch[] => {
  const batches: RecordBatch[] = [];
  for (let i = 0; i < records.length; i += BATCH) {
    batches.push({
      topic,
      partition: 0,
      records: records.slice(i, i + BATCH).map((r, j): LogRecord => ({
        topic,
        partition: 0,
        offset: String(i + j),
        key: r.key,
        value: Buffer.from(r.value),
        timestamp: 0,
        headers: {},
      })),
    });
  }
  return batches;
};
// Predictions and labels interleaved in proportion, as two topics read side by side.
const predictionBatches = asBatches('predictions', traffic.predictions(0, predictions));
const labelBatches = asBatches('labels', [...traffic.labels()]);
const batches: RecordBatch[] = [];
for (let p = 0, l = 0; p < predictionBatches.length || l < labelBatches.length;) {
  if (l >= labelBatches.length || (p < predictionBatches.length && p * labelBatches.length <= l * predictionBatches.length))
    batches.push(predictionBatches[p++]!);
  else batches.push(labelBatches[l++]!);
}
const total = batches.reduce((sum, b) => sum + b.records.length, 0);

let handler: SubscribeOptions['eachBatch'] | undefined;
const eventLog: EventLog = {
  publish: async () => {},
  ensureTopics: async () => [],
  endOffsets: async () => [],
  committedOffsets: async () => [],
  ping: async () => {},
  close: async () => {},
  subscribe: async (options) => {
    handler = options.eachBatch;
    return {
      commit: async () => {},
      committed: async () => ({ offset: null, metadata: null }),
      rewind: async () => {},
      stop: async () => {},
    };
  },
};
const prefix = `${run}:`;
const registry = createRegistry({ defaultMetrics: false });
const monitor = await startMonitor({
  eventLog,
  topics: { predictions: 'predictions', labels: 'labels', deadLetter: 'dead-letter' },
  groupId: run,
  registry,
  logger: createLogger('profile', 'warn'),
  joins:
    args.join === 'redis'
      ? new RedisJoinStore({ url: redisUrl! }, prefix, 7 * 86_400_000, 3_600_000)
      : new MemoryJoinStore(7 * 86_400_000, 3_600_000),
  joinWindowMs: 7 * 86_400_000,
  ...manifestsFrom(fileURLToPath(new URL('models', root))),
  maxSeries: 50,
  sliceFields: ['country', 'channel'],
  maxSlices: 20,
});
const profiler = args.profile ? new Session() : null;
const post = (method: string) =>
  new Promise<unknown>((resolve, reject) => profiler!.post(method, (error, result) => (error ? reject(error) : resolve(result))));
if (profiler) {
  profiler.connect();
  await post('Profiler.enable');
  await post('Profiler.start');
}
const cpu = process.cpuUsage();
const started = performance.now();
for (const batch of batches) await handler!(batch);
const elapsed = performance.now() - started;
const used = process.cpuUsage(cpu);
if (profiler) {
  const { profile } = (await post('Profiler.stop')) as { profile: unknown };
  writeFileSync(args.profile!, JSON.stringify(profile));
  profiler.disconnect();
}
const scrapeStarted = performance.now();
await registry.metrics();
console.log(
  JSON.stringify({
    records: total,
    batch: BATCH,
    join: args.join,
    records_per_s: Math.round(total / (elapsed / 1000)),
    wall_us_per_record: Number(((elapsed * 1000) / total).toFixed(2)),
    cpu_us_per_record: Number(((used.user + used.system) / total).toFixed(2)),
    scrape_ms: Number((performance.now() - scrapeStarted).toFixed(1)),
  }),
);
await monitor.stop();
if (args.join === 'redis') {
  const redis = new Redis(redisUrl!);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  await redis.quit();
}
