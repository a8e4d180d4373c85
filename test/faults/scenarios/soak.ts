/**
 * Scenario 4, the soak: every service as its own process (features, inference, monitor, and
 * the simulator at a fixed rate scoring each transaction through the inference API,
 * publishing it, and its label later), for a fixed time, with the memory of each process
 * sampled throughout (after a full collection: lib/memory.ts). Goal: no process grows beyond
 * the bound of lib/memory.ts after warm-up; and, once the simulator stops and the rest
 * drains, every transaction on the topic was handled by the pipeline (applied, a duplicate, or
 * dead-lettered), every scoring request answered, every prediction-log record delivered and
 * consumed by the monitor.
 */
import { createTopic } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import { deleteKeys, type Context } from '../lib/context.js';
import { appended } from '../lib/kafka.js';
import { describeGrowth, MemorySampler, mib } from '../lib/memory.js';
import { scrape, sum } from '../lib/metrics.js';
import { startService, startServices, type ServiceProcess } from '../lib/processes.js';
import { emptyRow, type Row } from '../lib/report.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function soakScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('4. soak');
  const run = ctx.name('soak');
  const topics = {
    TOPIC_TRANSACTIONS: `${run}-transactions`,
    TOPIC_LABELS: `${run}-labels`,
    TOPIC_PREDICTIONS: `${run}-predictions`,
    TOPIC_DEAD_LETTER: `${run}-dead-letter`,
    TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
  };
  for (const topic of Object.values(topics)) await createTopic(ctx.brokers, topic, 8);
  ctx.defer(() => deleteKeys(ctx.redisUrl, `${run}:`));
  const env = {
    KAFKA_BROKERS: ctx.brokers.join(','),
    REDIS_URL: ctx.redisUrl,
    REDIS_KEY_PREFIX: `${run}:`,
    CONSUMER_GROUP_PREFIX: run,
    LOG_LEVEL: 'info',
    SHED_EVENT_LOOP_DELAY_MS: '0',
    ...topics,
  };
  const processes: ServiceProcess[] = [];
  ctx.defer(async () => {
    for (const p of processes.reverse()) await p.stop(10_000);
  });
  await startServices(
    (['features', 'monitor', 'inference'] as const).map((name) => ({ name, options: { env, inspect: true } })),
    processes,
  );
  const [features, monitor, inference] = processes as [ServiceProcess, ServiceProcess, ServiceProcess];
  const simulator = await startService('simulator', 'simulator', {
    inspect: true,
    env: {
      ...env,
      INFERENCE_URL: inference.url!,
      SIMULATOR_RATE: String(ctx.sizes.soakRate),
      SIMULATOR_LABEL_DELAY: ctx.mode === 'full' ? '30s' : '5s',
      SIMULATOR_SEED: String(ctx.seed % 100_000),
    },
  });
  processes.push(simulator);

  // The pipeline's cache of entity states grows with every new entity, up to its bound: not counted as growth.
  const sampler = new MemorySampler(processes, {
    features: async () => sum((await scrape(features.url!)).samples, 'tributary_pipeline_cache_bytes'),
  });
  sampler.start(ctx.sizes.soakSampleMs);
  ctx.defer(() => sampler.stop());
  const minutes = ctx.sizes.soakMs / 60_000;
  ctx.log(`soak: ${ctx.sizes.soakRate} transactions/s for ${minutes} min (warm-up ${ctx.sizes.soakWarmupMs / 60_000} min)`);
  const started = Date.now();
  while (Date.now() - started < ctx.sizes.soakMs) {
    await sleep(Math.min(60_000, ctx.sizes.soakMs - (Date.now() - started)));
    if (Date.now() - started < ctx.sizes.soakMs) {
      const rss = processes.map((p) => `${p.label} ${mib(p.rss() ?? 0)}`).join(', ');
      ctx.log(`soak: ${((Date.now() - started) / 60_000).toFixed(1)} min; RSS ${rss}`);
    }
  }
  await sampler.stop();
  await sampler.sample();
  const growth = sampler.growth(ctx.sizes.soakWarmupMs);
  row.memoryTrace = sampler.trace();

  // Stop the traffic, let the rest drain, and count.
  const progress = [...simulator.output().matchAll(/"transactions":(\d+),"fraud":\d+,"scored":(\d+),"scoreErrors":(\d+)/g)].at(-1);
  await simulator.stop();
  const transactions = await appended(ctx.brokers, topics.TOPIC_TRANSACTIONS);
  const handled = async () => {
    const { samples } = await scrape(features.url!);
    const mine = (outcome: string) => sum(samples, 'tributary_pipeline_events_total', { topic: topics.TOPIC_TRANSACTIONS, outcome });
    return { applied: mine('applied'), duplicate: mine('duplicate'), deadLettered: mine('dead_lettered'), replayed: mine('replayed') };
  };
  let pipeline = await handled();
  const total = (p: typeof pipeline) => p.applied + p.duplicate + p.deadLettered + p.replayed;
  await waitFor(async () => total((pipeline = await handled())) >= transactions, {
    timeoutMs: 120_000,
    intervalMs: 500,
    what: 'the pipeline to handle every transaction',
  }).catch(() => undefined);
  await waitFor(async () => sum((await scrape(inference.url!)).samples, 'tributary_prediction_log_buffered') === 0, {
    timeoutMs: 60_000,
    what: 'the prediction log to drain',
  }).catch(() => undefined);
  const served = (await scrape(inference.url!)).samples;
  const predictions = sum(served, 'tributary_predictions_total');
  const degraded = sum(served, 'tributary_predictions_total', { degraded: 'true' });
  const logPublished = sum(served, 'tributary_prediction_log_records_total', { outcome: 'published' });
  const logDropped = sum(served, 'tributary_prediction_log_records_total', { outcome: 'dropped' });
  const delivered = await appended(ctx.brokers, topics.TOPIC_PREDICTIONS);
  let consumed = 0;
  let joins = 0;
  await waitFor(
    async () => {
      const { samples } = await scrape(monitor.url!);
      consumed = sum(samples, 'tributary_monitor_records_total', { stream: 'predictions' });
      joins = sum(samples, 'tributary_monitor_joins_total', { outcome: 'joined' });
      return consumed >= delivered;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: 'the monitor to consume the prediction log' },
  ).catch(() => undefined);

  const crashed = processes.map((p) => p.unexpectedExit).filter((e): e is string => e !== null);
  const worst = growth.reduce((a, b) => (b.growth - b.bound > a.growth - a.bound ? b : a));
  row.faults = `${ctx.sizes.soakRate} txn/s for ${minutes} min`;
  row.produced = transactions;
  row.lost = Math.max(0, transactions - total(pipeline)) + Math.max(0, delivered - consumed);
  row.doubled = Math.max(0, total(pipeline) - transactions) + pipeline.replayed;
  // Every transaction was scored first (the simulator scores, then publishes): requests = transactions.
  row.requests = transactions;
  row.errors5xx = Math.max(0, transactions - predictions);
  row.degraded = degraded;
  row.log = { produced: predictions, delivered, dropped: logDropped };
  row.memory = `${worst.growth >= 0 ? '+' : ''}${mib(worst.growth)} ${worst.label} (bound ${mib(worst.bound)})`;
  row.checks.push(
    ...growth.map((g) => ({ name: `memory of ${g.label} bounded after warm-up`, ok: g.ok, detail: describeGrowth(g) })),
    {
      name: 'every transaction handled by the pipeline once (applied, duplicate or dead-lettered)',
      ok: total(pipeline) === transactions && pipeline.replayed === 0,
      detail: `${transactions} on the topic; applied ${pipeline.applied}, duplicate ${pipeline.duplicate}, dead-lettered ${pipeline.deadLettered}, replayed ${pipeline.replayed}`,
    },
    {
      name: 'every prediction-log record delivered and consumed by the monitor',
      ok: logPublished + logDropped === predictions && logDropped === 0 && consumed === delivered && delivered === logPublished,
      detail: `${predictions} predictions, ${logPublished} published, ${logDropped} dropped, ${delivered} on the topic, ${consumed} consumed; ${joins} labels joined`,
    },
    { name: 'no process exited by itself', ok: crashed.length === 0, detail: crashed.join('; ') || `${processes.length} processes` },
  );
  if (progress)
    row.notes.push(
      `the simulator's last progress report: ${progress[1]} transactions, ${progress[2]} scored, ${progress[3]} scoring errors`,
    );
  return row;
}
