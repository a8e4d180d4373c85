/**
 * The delivery lag of a plain consumer (bench/features.ts starts it in its own process once the
 * pipeline has stopped, under the same load): how long after its event time (`ts`) each record
 * of a topic reaches a kafkajs `eachBatch` handler that does nothing else. The freshness the
 * pipeline can reach on this broker is above it.
 *   tsx bench/delivery-lag.ts TOPIC GROUP [FETCH_WAIT_MS]
 * After 2 s without records (or 2 minutes without any), prints one JSON line:
 * `{ "records", "p50_ms", "p99_ms", "max_ms" }`.
 */
import { KafkaEventLog } from '../shared/src/index.js';

const [topic, groupId, fetchWaitText] = process.argv.slice(2);
const brokers = process.env.KAFKA_BROKERS?.split(',');
if (!topic || !groupId || !brokers) throw new Error('usage: KAFKA_BROKERS=… tsx bench/delivery-lag.ts TOPIC GROUP [FETCH_WAIT_MS]');
const eventLog = new KafkaEventLog({
  brokers,
  clientId: 'bench-delivery-lag',
  sessionTimeout: 6_000,
  maxWaitTimeInMs: fetchWaitText === undefined ? undefined : Number(fetchWaitText),
});
const lags: number[] = [];
let lastRecordAt = 0;
const subscription = await eventLog.subscribe({
  groupId,
  topics: [topic],
  fromBeginning: false,
  eachBatch: async (batch) => {
    const now = Date.now();
    for (const record of batch.records) {
      const ts = record.value && (JSON.parse(record.value.toString('utf8')) as { ts?: unknown }).ts;
      if (typeof ts === 'number') lags.push(now - ts);
    }
    lastRecordAt = now;
  },
});
const giveUpAt = Date.now() + 120_000;
while (lastRecordAt === 0 ? Date.now() < giveUpAt : Date.now() - lastRecordAt < 2_000) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
await subscription.stop();
await eventLog.close();
lags.sort((a, b) => a - b);
const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? null;
console.log(JSON.stringify({ records: lags.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1) }));
