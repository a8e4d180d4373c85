/**
 * What the prediction log's producer and linger cost, on the real broker (KAFKA_BROKERS):
 * records shaped like the inference service's are appended at a fixed rate for a while and
 * produced as the service produces them (librdkafka's threads, or kafkajs in a worker thread),
 * with each producer and linger in turn (alternated); the process's CPU time per record (every
 * thread) is reported next to the same driver appending to a log that sends nowhere.
 *   tsx bench/prediction-log-linger.ts [--rate 1000] [--seconds 10] [--lingers 5,50]
 *                                      [--producers librdkafka,kafkajs] [--rounds 2]
 * Prints a report and writes it to bench/results/prediction-log-linger.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger, loadConfig, type PredictionLogRecord } from '../shared/src/index.js';
import { predictionPublisher } from '../services/inference/src/log-publisher.js';
import { encodePrediction, PredictionLog, type PredictionPublisher } from '../services/inference/src/prediction-log.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    lingers: { type: 'string', default: '5,50' },
    producers: { type: 'string', default: 'librdkafka,kafkajs' },
    rounds: { type: 'string', default: '2' },
  },
});
const brokers = process.env.KAFKA_BROKERS?.split(',');
if (!brokers) throw new Error('set KAFKA_BROKERS (see deploy/local/README.md)');
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const topic = `bench-log-${Date.now().toString(36)}`;

const record = (i: number): PredictionLogRecord => ({
  prediction_id: `p-${i}`,
  request_id: `r-${i}`,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  entities: { user_id: `u_${i % 1000}`, merchant_id: 'm_1' },
  request: { amount: 125.5, country: 'US', channel: 'web' },
  features: Object.fromEntries(Array.from({ length: 15 }, (_, k) => [`user_transactions:feature_${k}`, (i * 7 + k) % 100])),
  defaulted: [],
  feature_age_ms: { user_transactions: 1234 },
  score: 0.05,
  degraded: false,
  requested_at: Date.now(),
  predicted_at: Date.now(),
  latency_ms: 1.2,
});

/** Appends at RATE for SECONDS, then flushes: the process's CPU time per record. */
async function measure(publisher: PredictionPublisher, lingerMs: number): Promise<number> {
  const log = new PredictionLog({
    publisher,
    topic,
    capacity: 10_000_000,
    lingerMs,
    stats: { published: () => {}, dropped: () => {}, buffered: () => {} },
    logger: createLogger('bench', 'silent'),
  });
  const cpu0 = process.cpuUsage();
  const start = Date.now();
  let appended = 0;
  while (Date.now() - start < SECONDS * 1000) {
    const due = Math.floor(((Date.now() - start) * RATE) / 1000) - appended;
    for (let i = 0; i < due; i++) log.append(record(appended++));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await log.close();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / appended;
}

const producers = args.producers.split(',');
const publishers = new Map(
  producers.map((producer) => [
    producer,
    predictionPublisher(
      loadConfig({ KAFKA_BROKERS: brokers.join(','), PREDICTION_LOG_PRODUCER: producer }),
      createLogger('bench', 'silent'),
    ),
  ]),
);
for (const publisher of publishers.values()) await publisher.publishPredictions(topic, [encodePrediction(record(-1))]);
const lingers = args.lingers.split(',').map(Number);
const runs: { producer: string; linger_ms: number; cpu_us_per_record: number }[] = [];
const driver: number[] = [];
for (let round = 0; round < Number(args.rounds); round++) {
  driver.push(await measure({ publishPredictions: async () => {} }, 50));
  for (const [producer, publisher] of publishers)
    for (const lingerMs of lingers)
      runs.push({ producer, linger_ms: lingerMs, cpu_us_per_record: Number((await measure(publisher, lingerMs)).toFixed(1)) });
}
for (const publisher of publishers.values()) await publisher.close();
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const driverUs = median(driver);
const result = {
  measured_at: new Date().toISOString(),
  rate_per_s: RATE,
  seconds: SECONDS,
  // The driver alone (records built and appended to a log that sends nowhere).
  driver_cpu_us_per_record: Number(driverUs.toFixed(1)),
  runs,
  // Per producer and linger, the median CPU per record beyond the driver's: what producing the log costs.
  log_cpu_us_per_record: Object.fromEntries(
    producers.flatMap((producer) =>
      lingers.map((l) => [
        `${producer}_linger_${l}ms`,
        Number(
          (median(runs.filter((r) => r.producer === producer && r.linger_ms === l).map((r) => r.cpu_us_per_record)) - driverUs).toFixed(1),
        ),
      ]),
    ),
  ),
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/prediction-log-linger.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
