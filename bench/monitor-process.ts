/**
 * One consumer process of the monitor benchmark (bench/monitor.ts starts it, one per round):
 *   tsx bench/monitor-process.ts --mode monitor|raw --records N [--monitor-src DIR] [--profile FILE]
 * Configured from the environment as the monitor process is (services/monitor/src/main.ts:
 * KAFKA_BROKERS, REDIS_URL, REDIS_KEY_PREFIX, TOPIC_PREDICTIONS, TOPIC_LABELS, CONSUMER_GROUP_PREFIX...).
 * - `raw`: consumes the prediction and label topics with kafkajs `eachBatch` and does nothing else;
 * - `monitor`: runs `startMonitor` with `monitorSettings(config)`, as main.ts does (the Redis
 *   join store, the model registry's manifests), from `--monitor-src` (default: this checkout).
 * Times from the first batch to the N-th record handled, notes the process's memory every
 * tenth of the way, and prints one JSON line. With `--profile`, writes a V8 CPU profile of
 * the main thread from the first batch to the N-th record (start-up left out).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createEventLog, createLogger, createRegistry, loadConfig, type EventLog, type RecordBatch } from '../shared/src/index.js';
import type * as MonitorModule from '../services/monitor/src/index.js';

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string', default: 'monitor' },
    records: { type: 'string' },
    'monitor-src': { type: 'string', default: fileURLToPath(new URL('../services/monitor/src', import.meta.url)) },
    profile: { type: 'string' },
  },
});
const target = Number(args.records);
if (!(target > 0) || (args.mode !== 'raw' && args.mode !== 'monitor')) {
  throw new Error('usage: tsx bench/monitor-process.ts --mode monitor|raw --records N [--monitor-src DIR]');
}
const config = loadConfig(process.env, { PORT: '0' });
const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
const memory = () => {
  const m = process.memoryUsage();
  return { rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed), external_mb: mb(m.external + m.arrayBuffers) };
};

// The CPU profiler, started at the first batch when asked for.
const profiler = args.profile ? new Session() : null;
const post = (method: string) =>
  new Promise<unknown>((resolve, reject) => profiler!.post(method, (error, result) => (error ? reject(error) : resolve(result))));
if (profiler) {
  profiler.connect();
  await post('Profiler.enable');
}

// Counts the records handled (after the batch handler resolved) and notes the time of the first batch.
let handled = 0;
let first = 0;
let last = 0;
let cpuAtFirst: NodeJS.CpuUsage | undefined;
const checkpoints: ({ records: number } & ReturnType<typeof memory>)[] = [];
let done: () => void;
const finished = new Promise<void>((resolve) => (done = resolve));
const counted = (eventLog: EventLog): EventLog => ({
  publish: (topic, records) => eventLog.publish(topic, records),
  ensureTopics: (topics) => eventLog.ensureTopics(topics),
  endOffsets: (topic) => eventLog.endOffsets(topic),
  committedOffsets: (groupId, topic) => eventLog.committedOffsets(groupId, topic),
  ping: () => eventLog.ping(),
  close: () => eventLog.close(),
  subscribe: (options) =>
    eventLog.subscribe({
      ...options,
      eachBatch: async (batch: RecordBatch) => {
        if (first === 0) {
          first = performance.now();
          cpuAtFirst = process.cpuUsage();
          if (profiler) void post('Profiler.start');
        }
        await options.eachBatch(batch);
        const before = handled;
        handled += batch.records.length;
        if (Math.floor((before * 10) / target) < Math.floor((handled * 10) / target)) checkpoints.push({ records: handled, ...memory() });
        if (before < target && handled >= target) {
          last = performance.now();
          done();
        }
      },
    }),
});

const eventLog = counted(createEventLog(config, 'bench'));
const registry = createRegistry();
let stop: () => Promise<void>;
if (args.mode === 'raw') {
  const subscription = await eventLog.subscribe({
    groupId: `${config.CONSUMER_GROUP_PREFIX}-raw`,
    topics: [config.TOPIC_PREDICTIONS, config.TOPIC_LABELS],
    fromBeginning: true,
    eachBatch: async () => {},
  });
  stop = () => subscription.stop();
} else {
  const { startMonitor, monitorSettings } = (await import(
    pathToFileURL(join(args['monitor-src'], 'index.ts')).href
  )) as typeof MonitorModule;
  const monitor = await startMonitor({
    eventLog,
    topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
    groupId: `${config.CONSUMER_GROUP_PREFIX}-monitor`,
    registry,
    logger: createLogger('monitor', config.LOG_LEVEL),
    ...monitorSettings(config),
  });
  stop = () => monitor.stop();
}
await finished;
const cpu = process.cpuUsage(cpuAtFirst);
if (profiler) {
  const { profile } = (await post('Profiler.stop')) as { profile: unknown };
  writeFileSync(args.profile!, JSON.stringify(profile));
  profiler.disconnect();
}
const seconds = (last - first) / 1000;
const atEnd = memory();

// What the monitor counted, and how long one scrape (every statistic computed) takes.
const scrapeStarted = performance.now();
const exposition = await registry.metrics();
const scrapeMs = performance.now() - scrapeStarted;
const sum = (pattern: RegExp) => [...exposition.matchAll(pattern)].reduce((total, m) => total + Number(m[1]), 0);
const counters = {
  accepted: sum(/^tributary_monitor_records_total\{[^}]*outcome="accepted"\} (\S+)$/gm),
  dead_lettered: sum(/^tributary_monitor_records_total\{[^}]*outcome="dead_lettered"\} (\S+)$/gm),
  joined_on_label: sum(/^tributary_monitor_joins_total\{stream="labels",outcome="joined"\} (\S+)$/gm),
  joined_on_prediction: sum(/^tributary_monitor_joins_total\{stream="predictions",outcome="joined"\} (\S+)$/gm),
  waiting: sum(/^tributary_monitor_joins_total\{[^}]*outcome="waiting"\} (\S+)$/gm),
  duplicate: sum(/^tributary_monitor_joins_total\{[^}]*outcome="duplicate"\} (\S+)$/gm),
  metric_series: exposition.split('\n').filter((line) => line && !line.startsWith('#')).length,
};
// Idle now (every record consumed): what stays after a full garbage collection (node --expose-gc).
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
gc?.();
const afterGc = gc ? memory() : null;
await stop();
await eventLog.close();
process.stdout.write(
  JSON.stringify({
    mode: args.mode,
    records: handled,
    seconds,
    records_per_s: handled / seconds,
    cpu_us_per_record: (cpu.user + cpu.system) / handled,
    scrape_ms: scrapeMs,
    memory_at_end: atEnd,
    memory_after_gc: afterGc,
    checkpoints,
    ...(args.mode === 'monitor' ? { counters } : {}),
  }) + '\n',
);
process.exit(0);
