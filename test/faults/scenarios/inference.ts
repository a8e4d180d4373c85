/**
 * Scenario 2, the inference service under steady load (`services/inference` as its own
 * process, clients sending `POST /v1/predict` all along):
 * - its Redis (a private, durable redis-server) is killed and restarted: predictions go on,
 *   degraded (features defaulted) while it is away, whole again once it is back;
 * - every broker is marked down through the mock's control channel: predictions go on; the
 *   prediction log buffers its records (up to PREDICTION_LOG_BUFFER, set small here so that
 *   the bound is crossed) and delivers them once the brokers are back, the rest counted as
 *   dropped;
 * - a model reload under load: version 2 registered, promoted, then rolled back through the
 *   admin API while requests flow.
 * The prediction-log topic is then read back and compared with the predictions answered:
 * every one delivered once, or counted as dropped.
 */
import { createTopic, setBrokerDown } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import { logisticVersion, tempRegistry } from '../../../services/inference/test/models.js';
import type { Context } from '../lib/context.js';
import { deleteKeys } from '../lib/context.js';
import { readTopic } from '../lib/kafka.js';
import { SteadyLoad, statusSummary } from '../lib/load.js';
import { metricNow, scrape, sum } from '../lib/metrics.js';
import { startService } from '../lib/processes.js';
import { PrivateRedis } from '../lib/redis-server.js';
import { emptyRow, type Row } from '../lib/report.js';

const ADMIN_KEY = 'faults-admin-key-0123456789';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function inferenceScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('2. inference');
  const run = ctx.name('inference');
  const predictions = `${run}-predictions`;
  const redis = await PrivateRedis.start({ durable: true });
  ctx.defer(() => redis.stop());
  await createTopic(ctx.brokers, predictions, 4);
  const service = await startService('inference', 'inference', {
    env: {
      KAFKA_BROKERS: ctx.brokers.join(','),
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: `${run}:`,
      TOPIC_PREDICTIONS: predictions,
      TOPIC_TRANSACTIONS: `${run}-transactions`,
      MODEL_REGISTRY_DIR: tempRegistry(),
      ADMIN_API_KEYS: `ops:${ADMIN_KEY}`,
      ROUTING_POLL_INTERVAL: '500ms',
      FEATURE_FETCH_TIMEOUT_MS: '100',
      PREDICTION_LOG_BUFFER: String(ctx.sizes.predictionLogBuffer),
      // Load shedding answers 503 when the event loop lags, which on a shared 2-core machine is the machine's doing, not
      // the fault's: off, so that every 5xx counted is the fault's (as in services/inference/test/fuzz.test.ts).
      SHED_EVENT_LOOP_DELAY_MS: '0',
      LOG_LEVEL: 'info',
    },
  });
  ctx.defer(() => service.kill());
  ctx.defer(() => deleteKeys(ctx.redisUrl, `${run}:`));
  const url = service.url!;
  const admin = (path: string, body: unknown) =>
    fetch(`${url}/admin/models/fraud_detector/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      body: JSON.stringify(body),
    });

  const load = new SteadyLoad({ url, clients: ctx.sizes.inferenceClients, pauseMs: 20, run });
  ctx.defer(() => load.stop());
  const f = load.figures;
  const whole = () => load.answered - f.degraded;
  await waitFor(() => whole() > 100, { timeoutMs: 60_000, what: 'predictions before the faults' });
  const faults: string[] = [];

  // 1. Redis killed under load, restarted.
  await redis.kill();
  const degradedBefore = f.degraded;
  ctx.log('inference: Redis killed');
  await sleep(ctx.sizes.inferenceRedisDownMs);
  const degradedDuringOutage = f.degraded - degradedBefore;
  await redis.restart();
  const wholeAfter = whole();
  await waitFor(() => whole() > wholeAfter + 100, { timeoutMs: 60_000, what: 'whole (not degraded) predictions after Redis is back' });
  faults.push(`Redis SIGKILL ${ctx.sizes.inferenceRedisDownMs / 1000} s`);

  // 2. Every broker down: predictions go on, the log buffers (and drops beyond its bound, counted).
  const answeredBefore = load.answered;
  await setBrokerDown(-1, true);
  ctx.log('inference: every broker down');
  await sleep(ctx.sizes.inferenceBrokersDownMs);
  const answeredWhileDown = load.answered - answeredBefore;
  const bufferedAtPeak = await metricNow(url, 'tributary_prediction_log_buffered');
  const publishedBeforeUp = await metricNow(url, 'tributary_prediction_log_records_total', { outcome: 'published' });
  await setBrokerDown(-1, false);
  const upAt = Date.now();
  ctx.log(`inference: brokers up again (${answeredWhileDown} predictions answered meanwhile, ${bufferedAtPeak} log records buffered)`);
  await waitFor(
    async () => (await metricNow(url, 'tributary_prediction_log_records_total', { outcome: 'published' })) > publishedBeforeUp,
    { timeoutMs: 180_000, intervalMs: 250, what: 'the prediction log to publish again' },
  );
  const resumedAfter = (Date.now() - upAt) / 1000;
  await waitFor(async () => (await metricNow(url, 'tributary_prediction_log_buffered')) === 0, {
    timeoutMs: 180_000,
    intervalMs: 500,
    what: 'the prediction log to deliver its buffer',
  });
  faults.push(`all brokers down ${ctx.sizes.inferenceBrokersDownMs / 1000} s`);

  // 3. A model reload under load: version 2 registered, promoted, rolled back.
  const v2 = logisticVersion('2', 0.002, -1.5);
  const registered = await admin('versions', { manifest: v2.manifest, model_base64: v2.bytes.toString('base64') });
  const promoted = await admin('promote', { version: '2', reason: 'faults suite: reload under load' });
  const v2Before = f.versions.get('2') ?? 0;
  await waitFor(() => (f.versions.get('2') ?? 0) > v2Before + 100, { timeoutMs: 60_000, what: 'answers from version 2' });
  const rolledBack = await admin('rollback', { reason: 'faults suite: back to version 1' });
  const v1After = f.versions.get('1') ?? 0;
  await waitFor(() => (f.versions.get('1') ?? 0) > v1After + 100, { timeoutMs: 60_000, what: 'answers from version 1 after the rollback' });
  faults.push('promote + rollback');
  ctx.log(`inference: reload done (register ${registered.status}, promote ${promoted.status}, rollback ${rolledBack.status})`);

  await load.stop();
  await waitFor(async () => (await metricNow(url, 'tributary_prediction_log_buffered')) === 0, {
    timeoutMs: 60_000,
    what: 'the prediction log to deliver what is left',
  });
  const metrics = (await scrape(url)).samples;
  const published = sum(metrics, 'tributary_prediction_log_records_total', { outcome: 'published' });
  const dropped = sum(metrics, 'tributary_prediction_log_records_total', { outcome: 'dropped' });

  // The prediction log as it is on the topic.
  const contents = await readTopic(ctx.brokers, predictions);
  const onTopic = new Map<string, number>();
  for (const record of contents.partitions.flat()) {
    const id = (JSON.parse(record.value!.toString()) as { prediction_id: string }).prediction_id;
    onTopic.set(id, (onTopic.get(id) ?? 0) + 1);
  }
  const answeredIds = f.predictionIds;
  const delivered = [...answeredIds].filter((id) => onTopic.has(id)).length;
  const twice = [...onTopic.values()].reduce((n, c) => n + c - 1, 0);
  const foreign = [...onTopic.keys()].filter((id) => !answeredIds.has(id)).length;
  const lost = answeredIds.size - delivered - dropped;

  row.faults = faults.join(', ');
  row.produced = answeredIds.size;
  row.requests = f.requests;
  row.errors5xx = f.errors5xx + f.unanswered;
  row.degraded = f.degraded;
  row.log = { produced: answeredIds.size, delivered, dropped };
  row.lost = Math.max(0, lost);
  row.doubled = twice;
  row.checks.push(
    {
      name: 'predictions went on, degraded, while Redis was down',
      ok: degradedDuringOutage > 0,
      detail: `${degradedDuringOutage} degraded answers during the outage`,
    },
    {
      name: 'predictions went on while every broker was down',
      ok: answeredWhileDown > 0,
      detail:
        `${answeredWhileDown} answered; ${bufferedAtPeak} log records buffered at the end of the outage (bound ` +
        `${ctx.sizes.predictionLogBuffer}); the log published again ${resumedAfter.toFixed(1)} s after the brokers came back`,
    },
    {
      name: 'log records: delivered + counted as dropped = produced',
      ok: lost === 0 && foreign === 0,
      detail: `${delivered} delivered + ${dropped} dropped of ${answeredIds.size}; the service counted ${published} published; ${foreign} unknown records on the topic`,
    },
    {
      name: 'model reload under load: promote and rollback answered 200, both versions served',
      ok: registered.status === 201 && promoted.status === 200 && rolledBack.status === 200,
      detail: `register ${registered.status}, promote ${promoted.status}, rollback ${rolledBack.status}; answers by version ${[...f.versions.entries()].map(([v, n]) => `v${v}: ${n}`).join(', ')}`,
    },
    {
      name: 'the whole prediction-log topic was still on the broker',
      ok: contents.truncated.length === 0,
      detail: contents.truncated.length === 0 ? 'yes' : `partitions ${contents.truncated.join(',')} trimmed`,
    },
    { name: 'the service did not exit', ok: service.running, detail: service.unexpectedExit ?? 'running' },
  );
  row.notes.push(`statuses: ${statusSummary(f.statuses)}; ${f.unanswered} unanswered`);
  if (load.failures.length > 0) row.notes.push(`last failures: ${load.failures.slice(-3).join(' | ')}`);
  if (twice > 0) row.notes.push(`${twice} prediction-log records are on the topic twice (a send retried after the brokers came back)`);
  return row;
}
