/**
 * Where a pipeline process spends its time, without the broker: the bench's transactions
 * go through the feature processor (decode, apply) and its flushes to Redis (REDIS_URL),
 * timed phase by phase, with the CPU time of this process and of Redis per event. Run under `node --cpu-prof --import tsx` for a profile:
 *   tsx bench/profile-processor.ts [--events 80000] [--users 20000] [--minutes 30] [--flush-every 10000]
 * (`--minutes`: the event times' span, up to now; a longer one gives each entity more tiles).
 */
import { parseArgs } from 'node:util';
import { createFeatureProcessor } from '../services/features/src/index.js';
import { createRandom, fraud, RedisOnlineStore, type LogRecord } from '../shared/src/index.js';
import { redisCpuSeconds } from './redis-cpu.js';
import { benchTransactions } from './transactions.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '80000' },
    users: { type: 'string', default: '20000' },
    minutes: { type: 'string', default: '30' },
    'flush-every': { type: 'string', default: '10000' },
    partitions: { type: 'string', default: '4' },
    batch: { type: 'string', default: '500' },
  },
});
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('set REDIS_URL');
const EVENTS = Number(args.events);
const PARTITIONS = Number(args.partitions);
const run = `profile-${Date.now().toString(36)}`;
const store = new RedisOnlineStore({ url: redisUrl, keyPrefix: `${run}:` });
const example = fraud.fraudExample({ transactions: 'transactions' });
const source = example.sources[0]!;
const processor = createFeatureProcessor({ store, source, groups: example.groups, allowedLatenessMs: 5 * 60_000 });

const spanMs = Number(args.minutes) * 60_000;
const start = Date.now() - spanMs;
const outgoing = benchTransactions(
  createRandom(3),
  EVENTS,
  Number(args.users),
  (i) => `${run}-${i}`,
  (i) => start + Math.floor((i / EVENTS) * spanMs),
);
const offsets = new Array<number>(PARTITIONS).fill(0);
// By key, as the producer's partitioner does: a user's events all go to one partition.
const partitionOf = (key: string) => {
  let hash = 0;
  for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) | 0;
  return Math.abs(hash) % PARTITIONS;
};
const records: LogRecord[] = outgoing.map((r) => {
  const partition = partitionOf(r.key!);
  return {
    topic: 'transactions',
    partition,
    offset: String(offsets[partition]!++),
    key: r.key,
    value: Buffer.from(r.value),
    timestamp: 0,
    headers: {},
  };
});
for (let p = 0; p < PARTITIONS; p++) processor.open('transactions', p, -Infinity);

const batchSize = Number(args.batch);
const flushEvery = Number(args['flush-every']);
let processMs = 0;
let flushMs = 0;
let written = 0;
let sinceFlush = 0;
const redisCpu0 = await redisCpuSeconds(store.client);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < records.length; i += batchSize * PARTITIONS) {
  for (let p = 0; p < PARTITIONS; p++) {
    const slice = records.slice(i, i + batchSize * PARTITIONS).filter((r) => r.partition === p);
    const a = performance.now();
    await processor.process({ topic: 'transactions', partition: p, records: slice });
    processMs += performance.now() - a;
    sinceFlush += slice.length;
  }
  if (sinceFlush >= flushEvery || i + batchSize * PARTITIONS >= records.length) {
    const b = performance.now();
    written += (await processor.flush()).written;
    flushMs += performance.now() - b;
    sinceFlush = 0;
  }
}
const totalMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const redisCpuS = (await redisCpuSeconds(store.client)) - redisCpu0;
console.log(
  JSON.stringify({
    events: EVENTS,
    events_per_s: Math.round(EVENTS / (totalMs / 1000)),
    process_us_per_event: Number(((processMs * 1000) / EVENTS).toFixed(2)),
    entities_written: written,
    flush_us_per_entity: Number(((flushMs * 1000) / written).toFixed(2)),
    total_ms: Math.round(totalMs),
    // CPU time, less sensitive than wall time to what else the machine runs.
    process_cpu_us_per_event: Number(((cpu.user + cpu.system) / EVENTS).toFixed(2)),
    redis_cpu_us_per_event: Number(((redisCpuS * 1e6) / EVENTS).toFixed(2)),
  }),
);
const keys = await store.client.keys(`${run}:*`);
for (let i = 0; i < keys.length; i += 1000) await store.client.del(...keys.slice(i, i + 1000));
await store.close();
