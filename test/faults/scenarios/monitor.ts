/**
 * Scenario 3, the monitor killed with pending joins. Prediction-log records and labels are
 * published steadily: most labels trail their prediction (so that, at any moment, many
 * predictions wait for their label), some come first, some request ids get two labels, and
 * some labels name no prediction at all. The monitor process (`services/monitor`, its join
 * store on Redis) is killed with SIGKILL at random moments and restarted.
 *
 * The verifier reads the join store in Redis: every request id with a prediction and a label
 * must be joined (its entry is the joined marker, nothing waits), every prediction without a
 * label and every label without a prediction must still wait. The joins each monitor process
 * reported (`tributary_monitor_joins_total{outcome="joined"}`, scraped every 250 ms until it
 * was killed), less those answered again to records a killed process had offered
 * (`tributary_monitor_joins_again_total`: records since its last offset commit, consumed again
 * by its successor), must not add up to more than the pairs: nothing joined twice.
 */
import { Redis } from 'ioredis';
import { createRandom, fraud, type OutgoingRecord } from '@tributary/shared';
import { createTopic } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import { deleteKeys, type Context } from '../lib/context.js';
import { joinStates } from '../lib/join-state.js';
import { Publisher } from '../lib/kafka.js';
import { scrape, sum } from '../lib/metrics.js';
import { startService, type ServiceProcess } from '../lib/processes.js';
import { emptyRow, type Row } from '../lib/report.js';

/** Labels trail their prediction by this many predictions. */
const LAG = 600;
const RATE = 150;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Incarnation {
  process: ServiceProcess;
  joined: number;
  /** Of `joined`, the pairs answered again (records offered before, by a process killed since). */
  again: number;
  duplicate: number;
  deadLettered: number;
  /** Records consumed (accepted or dead-lettered). */
  consumed: number;
}

export async function monitorScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('3. monitor');
  const run = ctx.name('monitor');
  const topics = { predictions: `${run}-predictions`, labels: `${run}-labels`, deadLetter: `${run}-dead-letter` };
  await createTopic(ctx.brokers, topics.predictions, 4);
  await createTopic(ctx.brokers, topics.labels, 4);
  await createTopic(ctx.brokers, topics.deadLetter, 1);
  ctx.defer(() => deleteKeys(ctx.redisUrl, `${run}:`));
  const env = {
    KAFKA_BROKERS: ctx.brokers.join(','),
    REDIS_URL: ctx.redisUrl,
    REDIS_KEY_PREFIX: `${run}:`,
    TOPIC_PREDICTIONS: topics.predictions,
    TOPIC_LABELS: topics.labels,
    TOPIC_DEAD_LETTER: topics.deadLetter,
    CONSUMER_GROUP_PREFIX: run,
    KAFKA_SESSION_TIMEOUT: '6s',
    LOG_LEVEL: 'info',
  };

  // Who gets what: labelled (85 %), of which label-first (5 % of all) and labelled twice (5 % of all); the rest wait.
  const random = createRandom(ctx.seed + 3);
  const n = ctx.sizes.monitorPredictions;
  const ids = Array.from({ length: n }, (_, i) => `${run}-q${i}`);
  const labelled = ids.map(() => random.next() < 0.85);
  const labelFirst = ids.map((_, i) => i >= LAG && labelled[i]! && random.next() < 0.06);
  const twice = ids.map((_, i) => labelled[i]! && random.next() < 0.06);
  const orphans: string[] = [];
  const prediction = (i: number): OutgoingRecord => {
    const score = random.next();
    const record = {
      prediction_id: `${run}-p${i}`,
      request_id: ids[i]!,
      model: { name: 'fraud_detector', version: '1' },
      variant: 'champion',
      entities: { user_id: `u_${i % 300}`, merchant_id: `m_${i % 40}` },
      request: { amount: 20 + (i % 300), country: i % 5 ? 'US' : 'GB', channel: 'web' },
      features: Object.fromEntries(fraud.FRAUD_MODEL_FEATURES.map((name) => [name, Math.round(random.next() * 1000) / 10])),
      defaulted: [],
      score,
      degraded: false,
      requested_at: Date.now() - 3,
      predicted_at: Date.now(),
      latency_ms: 3,
    };
    return { key: record.request_id, value: JSON.stringify(record) };
  };
  const label = (requestId: string): OutgoingRecord => ({
    key: requestId,
    value: JSON.stringify({ request_id: requestId, label: random.next() < 0.1 ? 1 : 0, ts: Date.now() }),
  });

  const incarnations: Incarnation[] = [];
  ctx.defer(async () => {
    for (const i of incarnations) await i.process.kill();
  });
  const start = async () => {
    const process = await startService('monitor', `monitor#${incarnations.length + 1}`, { env });
    const incarnation: Incarnation = { process, joined: 0, again: 0, duplicate: 0, deadLettered: 0, consumed: 0 };
    incarnations.push(incarnation);
    return incarnation;
  };
  /** Scrapes the live monitor every 250 ms: what a killed one reported last is what it counted. */
  let scraping = true;
  const observe = async (i: Incarnation) => {
    const { samples } = await scrape(i.process.url!, 2_000);
    i.joined = sum(samples, 'tributary_monitor_joins_total', { outcome: 'joined' });
    i.again = sum(samples, 'tributary_monitor_joins_again_total');
    i.duplicate = sum(samples, 'tributary_monitor_joins_total', { outcome: 'duplicate' });
    i.deadLettered = sum(samples, 'tributary_monitor_records_total', { outcome: 'dead_lettered' });
    i.consumed = sum(samples, 'tributary_monitor_records_total');
  };
  const scraper = (async () => {
    while (scraping) {
      const current = incarnations.at(-1);
      if (current?.process.running) await observe(current).catch(() => undefined);
      await sleep(250);
    }
  })();
  ctx.defer(async () => {
    scraping = false;
    await scraper;
  });

  let current = await start();
  const publisher = new Publisher(ctx.brokers, `${run}-producer`);
  ctx.defer(() => publisher.close());
  let published = 0;
  let labels = 0;
  const publishing = (async () => {
    const slice = Math.max(1, Math.round(RATE / 10));
    for (let next = 0; next < n + LAG; next += slice) {
      const preds: OutgoingRecord[] = [];
      const labs: OutgoingRecord[] = [];
      for (let i = next; i < next + slice; i++) {
        if (i < n) preds.push(prediction(i));
        const ahead = i + LAG; // label-first: published LAG predictions before its own
        if (ahead < n && labelFirst[ahead]) labs.push(label(ids[ahead]!));
        const behind = i - LAG;
        if (behind >= 0 && behind < n && labelled[behind] && !labelFirst[behind]) labs.push(label(ids[behind]!));
        if (behind >= 0 && behind < n && twice[behind]) labs.push(label(ids[behind]!));
      }
      if (random.next() < 0.2) {
        orphans.push(`${run}-orphan-${orphans.length}`);
        labs.push(label(orphans.at(-1)!));
      }
      await publisher.publish(topics.predictions, preds);
      await publisher.publish(topics.labels, labs);
      published += preds.length;
      labels += labs.length;
      await sleep(100);
    }
  })();

  await waitFor(() => current.joined > 0, { timeoutMs: 120_000, intervalMs: 200, what: 'the monitor to join labels' });
  for (let k = 0; k < ctx.sizes.monitorKills; k++) {
    // At a random moment of the k-th stretch of the stream, while records are still to come (so that the restarted monitor
    // has some to consume, however long it took to start).
    const stretch = n / (ctx.sizes.monitorKills + 1);
    const at = Math.floor(stretch * (k + 1) + random.int(Math.max(1, Math.floor(stretch / 2))));
    await waitFor(() => published >= at, { timeoutMs: 300_000, intervalMs: 50, what: `${at} predictions published` });
    await observe(current).catch(() => undefined);
    await current.process.kill();
    ctx.log(
      `monitor: SIGKILL ${k + 1} of ${ctx.sizes.monitorKills} (${published} predictions, ${labels} labels published; it had reported ${current.joined} joins)`,
    );
    current = await start();
    await waitFor(() => current.consumed > 0, {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: 'the restarted monitor to consume',
    });
  }
  await publishing;

  // The verdict, from the join store: wait until every pair is joined (or the deadline), then until the counters settle.
  const redis = new Redis(ctx.redisUrl, { maxRetriesPerRequest: 2 });
  ctx.defer(async () => redis.disconnect());
  const pairs = ids.filter((_, i) => labelled[i]);
  const notJoined = async () => (await joinStates(redis, `${run}:`, pairs)).filter((s) => !s.joined || s.predictionWaiting).length;
  let missing = await notJoined();
  const deadline = Date.now() + 120_000;
  while (missing > 0 && Date.now() < deadline) {
    await sleep(1_000);
    missing = await notJoined();
  }
  let last = -1;
  await waitFor(
    async () => {
      await observe(current);
      const settled = current.joined + current.duplicate === last;
      last = current.joined + current.duplicate;
      return settled;
    },
    { timeoutMs: 60_000, intervalMs: 2_000, what: 'the monitor counters to settle' },
  );
  scraping = false;
  await scraper;

  const states = await joinStates(redis, `${run}:`, ids);
  // Joined, yet a prediction of the pair still waits: it would join (and count) again.
  const joinedAndWaiting = states.filter((s, i) => labelled[i] && s.joined && s.predictionWaiting).length;
  const waitingLost = states.filter((s, i) => !labelled[i] && !s.predictionWaiting).length;
  const orphansLost = (await joinStates(redis, `${run}:`, orphans)).filter((s) => !s.labelWaiting).length;

  const reported = incarnations.reduce((s, i) => s + i.joined, 0);
  // Joins answered again are observed again by design (at least once after a kill): the first answers count.
  const reportedAgain = incarnations.reduce((s, i) => s + i.again, 0);
  const reportedFirst = reported - reportedAgain;
  const deadLettered = incarnations.reduce((s, i) => s + i.deadLettered, 0);
  const crashed = incarnations.map((i) => i.process.unexpectedExit).filter((e): e is string => e !== null);
  row.faults = `${ctx.sizes.monitorKills}× SIGKILL with pending joins`;
  row.produced = published + labels;
  row.lost = missing + waitingLost + orphansLost;
  row.doubled = Math.max(0, reportedFirst - pairs.length) + joinedAndWaiting;
  row.checks.push(
    {
      name: 'every label that has its prediction is joined (join store)',
      ok: missing === 0,
      detail: `${pairs.length - missing} of ${pairs.length} pairs joined`,
    },
    {
      name: 'joins reported by the monitor processes, less those answered again, ≤ pairs (none joined twice)',
      ok: reportedFirst <= pairs.length && joinedAndWaiting === 0,
      detail:
        `${reported} reported across ${incarnations.length} processes (${incarnations.map((i) => i.joined).join(' + ')}), ` +
        `${reportedAgain} of them answered again to records offered before a kill; ` +
        `${pairs.length - Math.min(reportedFirst, pairs.length)} first answered to a process after its last scrape; ` +
        `${joinedAndWaiting} joined requests with a prediction still waiting`,
    },
    {
      name: 'pending sides survive the kills (predictions and labels without their other side still wait)',
      ok: waitingLost === 0 && orphansLost === 0,
      detail: `${ids.length - pairs.length - waitingLost} of ${ids.length - pairs.length} predictions, ${orphans.length - orphansLost} of ${orphans.length} labels`,
    },
    { name: 'no valid record dead-lettered', ok: deadLettered === 0, detail: String(deadLettered) },
    {
      name: 'no monitor process exited unless killed',
      ok: crashed.length === 0,
      detail: crashed.join('; ') || `${incarnations.length} processes`,
    },
  );
  row.notes.push(
    `${published} predictions and ${labels} labels (${labelFirst.filter(Boolean).length} before their prediction, ` +
      `${twice.filter(Boolean).length} second labels, ${orphans.length} without a prediction)`,
  );
  return row;
}
