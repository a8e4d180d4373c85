/**
 * Scenario 5, hostile input (the corpus is hostile-corpus.ts), against the services as
 * processes:
 * - HTTP: every body of the corpus sent to the inference API over a real socket, and raw
 *   bytes no HTTP client would send; goal: 4xx for every invalid one (2xx for the valid
 *   controls), no 5xx, the process alive and answering afterwards;
 * - Kafka: malformed and hostile records published to the transactions topic (the feature
 *   pipeline consumes it) and the labels topic (the monitor), among valid records and in
 *   one giant batch; goal: every bad record on the dead-letter topic with a reason, every
 *   valid one applied (the features equal the reference's) or joined, no process down.
 */
import { Redis } from 'ioredis';
import { fraud, RedisOnlineStore, type OutgoingRecord } from '@tributary/shared';
import { createTopic } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import { deleteKeys, type Context } from '../lib/context.js';
import { verifyFeatures } from '../lib/feature-verifier.js';
import { send, sendRaw } from '../lib/http.js';
import { joinState, joinStates } from '../lib/join-state.js';
import { Publisher, readDeadLetters, readTopic } from '../lib/kafka.js';
import { scrape, sum } from '../lib/metrics.js';
import { startServices, type ServiceProcess } from '../lib/processes.js';
import { emptyRow, type Row } from '../lib/report.js';
import { httpCorpus, kafkaCorpus, rawCorpus } from './hostile-corpus.js';

export async function hostileInputScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('5. hostile input');
  const run = ctx.name('hostile');
  const topics = {
    TOPIC_TRANSACTIONS: `${run}-transactions`,
    TOPIC_LABELS: `${run}-labels`,
    TOPIC_PREDICTIONS: `${run}-predictions`,
    TOPIC_DEAD_LETTER: `${run}-dead-letter`,
    TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
  };
  for (const [name, topic] of Object.entries(topics)) await createTopic(ctx.brokers, topic, name === 'TOPIC_DEAD_LETTER' ? 1 : 4);
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
    for (const p of processes) await p.stop(10_000);
  });
  await startServices(
    (['features', 'monitor', 'inference'] as const).map((name) => ({ name, options: { env } })),
    processes,
  );
  const inference = processes[2]!;

  // --- HTTP ---------------------------------------------------------------------------
  const http = { sent: 0, errors5xx: 0, unanswered: 0, wrong: [] as string[] };
  for (const c of httpCorpus()) {
    const contentType = c.contentType === undefined ? (c.body === undefined ? null : 'application/json') : c.contentType;
    const answer = await send(inference.url!, {
      method: c.method,
      path: c.path,
      body: c.body,
      headers: { ...(contentType !== null ? { 'content-type': contentType } : {}), ...c.headers },
    });
    http.sent++;
    const status = answer.status;
    if (status === null) {
      // A server may refuse an oversized body by closing the connection after its 413: only a refusal counts then.
      if (c.expect === 'ok') http.wrong.push(`${c.name}: no answer (${answer.error})`);
      else http.unanswered++;
    } else if (status >= 500) {
      http.errors5xx++;
      http.wrong.push(`${c.name}: ${status} ${answer.body.slice(0, 200)}`);
    } else if (c.expect === 'ok' && (status < 200 || status > 299))
      http.wrong.push(`${c.name}: expected 2xx, got ${status} ${answer.body.slice(0, 200)}`);
    else if (c.expect === 'reject' && (status < 400 || status > 499)) http.wrong.push(`${c.name}: expected 4xx, got ${status}`);
  }
  const raw = { sent: 0, errors5xx: 0, statuses: new Map<string, number>() };
  for (const c of rawCorpus()) {
    const answer = await sendRaw(inference.url!, c.bytes);
    raw.sent++;
    const outcome = answer.status === null ? 'closed' : String(answer.status);
    raw.statuses.set(outcome, (raw.statuses.get(outcome) ?? 0) + 1);
    if (answer.status !== null && answer.status >= 500) {
      raw.errors5xx++;
      http.wrong.push(`raw ${c.name}: ${answer.status}`);
    }
  }
  const healthy = (await send(inference.url!, { method: 'GET', path: '/healthz' })).status === 200;
  const stillPredicts = await send(inference.url!, {
    path: '/v1/predict',
    body: JSON.stringify({
      request_id: 'after',
      entities: { user_id: 'u_1', merchant_id: 'm_1' },
      features: { amount: 1, country: 'US', channel: 'web' },
    }),
    headers: { 'content-type': 'application/json' },
  });
  ctx.log(`hostile: ${http.sent} HTTP requests and ${raw.sent} raw ones sent; ${http.wrong.length} unexpected answers`);

  // --- Kafka --------------------------------------------------------------------------
  const now = Date.now();
  const publisher = new Publisher(ctx.brokers, `${run}-producer`);
  ctx.defer(() => publisher.close());
  const corpus = kafkaCorpus(run, now);
  const good = (i: number, key = `${run}-g${i}`): OutgoingRecord => ({
    key,
    value: JSON.stringify({
      event_id: `${run}-good-${i}`,
      user_id: `${run}-user-${i % 40}`,
      merchant_id: `${run}-m-${i % 7}`,
      amount: 1 + (i % 100),
      currency: 'USD',
      country: 'US',
      channel: 'web',
      ts: now - 120_000 + i,
    }),
  });
  const predicted = Array.from({ length: 20 }, (_, i) => `${run}-q${i}`);
  const prediction = (requestId: string, i: number, predictedAt = now): OutgoingRecord => ({
    key: requestId,
    value: JSON.stringify({
      prediction_id: `${run}-p${i}`,
      request_id: requestId,
      model: { name: 'fraud_detector', version: '1' },
      variant: 'champion',
      entities: { user_id: 'u_1' },
      request: { amount: 5, country: 'US', channel: 'web' },
      features: Object.fromEntries(fraud.FRAUD_MODEL_FEATURES.map((f) => [f, 1])),
      defaulted: [],
      score: 0.2,
      degraded: false,
      requested_at: now,
      predicted_at: predictedAt,
      latency_ms: 1,
    }),
  });
  const goodLabel = (requestId: string): OutgoingRecord => ({
    key: requestId,
    value: JSON.stringify({ request_id: requestId, label: 0, ts: now }),
  });
  const orphan = `${run}-orphan`;

  const redisProbe = new Redis(ctx.redisUrl, { maxRetriesPerRequest: 2 });
  ctx.defer(async () => redisProbe.disconnect());
  await publisher.publish(
    topics.TOPIC_PREDICTIONS,
    predicted.map((id, i) => prediction(id, i)),
  );
  let goods = 0;
  const goodBatch = (count: number) => Array.from({ length: count }, () => good(goods++));
  await publisher.publish(topics.TOPIC_TRANSACTIONS, goodBatch(200));
  await publisher.publish(topics.TOPIC_LABELS, predicted.slice(0, 10).map(goodLabel));
  for (const c of corpus) {
    const topic = c.topic === 'transactions' ? topics.TOPIC_TRANSACTIONS : topics.TOPIC_LABELS;
    await publisher.publish(topic, [c.record as OutgoingRecord]);
  }
  // A valid label in one batch with a label whose ts is 1e308 (an integer, so valid by the label schema): its join must count
  // like any other. Same key, one send: the same partition, adjacent offsets, one fetch.
  const probe = `${run}-probe`;
  await publisher.publish(topics.TOPIC_PREDICTIONS, [prediction(probe, 99)]);
  await waitFor(async () => joinState(await redisProbe.hgetall(`${run}:join:{${probe}}`)).predictionWaiting, {
    timeoutMs: 60_000,
    what: 'the monitor to take the probe prediction',
  });
  await publisher.publish(topics.TOPIC_LABELS, [
    { key: probe, value: JSON.stringify({ request_id: `${run}-probe-1e308`, label: 1, ts: 1e308 }) },
    goodLabel(probe),
  ]);
  // A prediction whose time has a fraction of a millisecond (valid: a number), then its label: joined and counted.
  const fraction = `${run}-fraction`;
  await publisher.publish(topics.TOPIC_PREDICTIONS, [prediction(fraction, 98, now + 0.5)]);
  await publisher.publish(topics.TOPIC_LABELS, [goodLabel(fraction)]);
  // A giant batch: 5,000 records in one send, every 50th malformed.
  const giant: OutgoingRecord[] = goodBatch(5_000).map((r, i) =>
    i % 50 === 49 ? { key: r.key, value: `${String(r.value).slice(0, 40)}` } : r,
  );
  await publisher.publish(topics.TOPIC_TRANSACTIONS, giant);
  await publisher.publish(topics.TOPIC_TRANSACTIONS, goodBatch(200));
  await publisher.publish(topics.TOPIC_LABELS, [...predicted.slice(10).map(goodLabel), goodLabel(orphan), goodLabel(predicted[0]!)]);
  const produced = publisher.acked;

  // Transactions: the feature verifier (the reference decides applied / set aside, by reason).
  const store = new RedisOnlineStore({ url: ctx.redisUrl, keyPrefix: `${run}:` });
  ctx.defer(() => store.close());
  const verdict = await verifyFeatures({
    brokers: ctx.brokers,
    topic: topics.TOPIC_TRANSACTIONS,
    deadLetterTopic: topics.TOPIC_DEAD_LETTER,
    store,
    allowedLatenessMs: 5 * 60_000,
    waitMs: 90_000,
    log: ctx.log,
  });
  const byKey = new Map(verdict.records.map((r) => [r.key, r]));
  const kafkaWrong: string[] = [];
  let badMissed = 0;
  let goodLost = 0;
  for (const c of corpus.filter((k) => k.topic === 'transactions')) {
    const r = byKey.get(c.record.key);
    if (!r) {
      kafkaWrong.push(`transactions "${c.name}": not on the topic`);
      continue;
    }
    if (c.expect === 'reject' && (r.reason === null || r.deadLettered === null)) {
      badMissed++;
      kafkaWrong.push(`transactions "${c.name}": ${r.reason === null ? 'accepted by the pipeline' : 'not on the dead-letter topic'}`);
    }
    if (c.expect === 'ok' && r.reason !== null) {
      goodLost++;
      kafkaWrong.push(`transactions "${c.name}": set aside (${r.reason})`);
    }
  }
  const goodSetAside = verdict.records.filter((r) => r.key?.startsWith(`${run}-g`) && r.reason !== null);
  const giantMalformed = giant.filter((_, i) => i % 50 === 49).length;
  // The giant batch's malformed records are expected there; any other good record set aside is lost.
  const goodKeysMalformed = new Set(giant.filter((_, i) => i % 50 === 49).map((r) => r.key));
  const lostGood = goodSetAside.filter((r) => !goodKeysMalformed.has(r.key!));
  goodLost += lostGood.length;
  for (const r of lostGood.slice(0, 3)) kafkaWrong.push(`valid transaction ${r.key} set aside (${r.reason})`);
  if (lostGood.length > 3) kafkaWrong.push(`… and ${lostGood.length - 3} more valid transactions set aside`);
  const giantCaught = goodSetAside.filter((r) => goodKeysMalformed.has(r.key!) && r.deadLettered !== null).length;

  // Labels: every bad one dead-lettered by the monitor; every good one joined or (the orphan) waiting.
  const labelCases = corpus.filter((k) => k.topic === 'labels');
  const labelTopic = await readTopic(ctx.brokers, topics.TOPIC_LABELS);
  const labelAt = new Map(labelTopic.partitions.flat().map((r) => [r.key, `${r.topic}:${r.partition}:${r.offset}`]));
  let letters = await readDeadLetters(ctx.brokers, topics.TOPIC_DEAD_LETTER);
  const labelsLettered = () => labelCases.filter((c) => c.expect === 'reject' && letters.letters.has(labelAt.get(c.record.key)!)).length;
  const rejectLabels = labelCases.filter((c) => c.expect === 'reject').length;
  const redis = new Redis(ctx.redisUrl, { maxRetriesPerRequest: 2 });
  ctx.defer(async () => redis.disconnect());
  const joinedCount = async () => (await joinStates(redis, `${run}:`, predicted)).filter((st) => st.joined).length;
  let joined = 0;
  await waitFor(
    async () => {
      letters = await readDeadLetters(ctx.brokers, topics.TOPIC_DEAD_LETTER);
      joined = await joinedCount();
      return labelsLettered() === rejectLabels && joined === predicted.length;
    },
    { timeoutMs: 30_000, intervalMs: 1_000, what: 'the monitor to dead-letter the bad labels and join the good ones' },
  ).catch(() => undefined);
  const [probeState, fractionState, probeLeft, orphanState] = await joinStates(redis, `${run}:`, [
    probe,
    fraction,
    `${run}-probe-1e308`,
    orphan,
  ]);
  const probeJoined = probeState!.joined;
  const fractionJoined = fractionState!.joined;
  const probeTtl = await redis.pttl(`${run}:join:{${run}-probe-1e308}`);
  const monitorJoins = sum((await scrape(processes[1]!.url!)).samples, 'tributary_monitor_joins_total', { outcome: 'joined' });
  const failureLines = processes[1]!
    .output()
    .split('\n')
    .filter((line) => line.includes('monitor batch failed'));
  const batchFailures = failureLines.length;
  for (const c of labelCases) {
    const letter = letters.letters.get(labelAt.get(c.record.key)!);
    if (c.expect === 'reject' && !letter) {
      badMissed++;
      kafkaWrong.push(`labels "${c.name}": not on the dead-letter topic`);
    }
  }
  const orphanWaits = orphanState!.labelWaiting;
  const joinsExpected = predicted.length + 2;
  const joinsUncounted = Math.max(0, joinsExpected - monitorJoins);
  goodLost += predicted.length - joined + (orphanWaits ? 0 : 1) + (probeJoined ? 0 : 1) + (fractionJoined ? 0 : 1) + joinsUncounted;

  const alive = processes.filter((p) => !p.running).map((p) => p.unexpectedExit ?? `${p.label} is not running`);
  const badCount = corpus.filter((c) => c.expect === 'reject').length + giantMalformed;
  row.faults = `${http.sent + raw.sent} HTTP requests, ${badCount} bad records among ${produced}`;
  row.produced = produced;
  row.requests = http.sent + raw.sent;
  row.errors5xx = http.errors5xx + raw.errors5xx;
  row.lost = badMissed + goodLost + verdict.lost;
  row.doubled = verdict.doubled;
  row.checks.push(
    {
      name: 'every invalid HTTP request answered 4xx, every valid one 2xx',
      ok: http.wrong.length === 0,
      detail: http.wrong.length === 0 ? `${http.sent} requests` : http.wrong.slice(0, 8).join('; '),
    },
    {
      name: 'raw protocol junk answered 4xx or closed',
      ok: raw.errors5xx === 0,
      detail: [...raw.statuses.entries()].map(([s, n]) => `${s}: ${n}`).join(', '),
    },
    {
      name: 'the inference service is healthy and predicts afterwards',
      ok: healthy && stillPredicts.status === 200,
      detail: `/healthz ${healthy ? 200 : 'failed'}, predict ${stillPredicts.status}`,
    },
    {
      name: 'every bad Kafka record on the dead-letter topic with a reason',
      ok: badMissed === 0 && giantCaught === giantMalformed,
      detail: `${verdict.deadLetters.found} transactions (${Object.entries(verdict.rejected)
        .map(([r, n]) => `${r} ${n}`)
        .join(', ')}; ${giantCaught} of the giant batch's ${giantMalformed}), ${labelsLettered()} of ${rejectLabels} labels`,
    },
    {
      name: 'nothing else lost: valid records applied (features equal the reference) and labels joined',
      ok: goodLost === 0 && verdict.mismatches === 0,
      detail: `${verdict.mismatches} of ${verdict.reads} entity reads differ; ${joined} of ${predicted.length} labels joined; the orphan label ${orphanWaits ? 'waits' : 'is gone'}`,
    },
    {
      name: 'every join counted by the monitor (a label in a batch with a bad one; a prediction time with a fraction of a ms)',
      ok: probeJoined && fractionJoined && monitorJoins === joinsExpected,
      detail:
        `tributary_monitor_joins_total{outcome="joined"} ${monitorJoins} of ${joinsExpected} pairs ` +
        `(the label sharing a batch with the ts-1e308 label: ${probeJoined ? 'joined in the store' : 'not joined'}; ` +
        `the prediction with predicted_at ${now + 0.5}: ${fractionJoined ? 'joined in the store' : 'not joined'}); ` +
        `${batchFailures} "monitor batch failed" warnings${batchFailures > 0 ? ` (first: ${failureLines[0]!.slice(0, 600)})` : ''}; the 1e308 label left ${JSON.stringify(probeLeft!.fields)} in the join store, ` +
        `TTL ${probeTtl} ms`,
    },
    { name: 'no process crashed', ok: alive.length === 0, detail: alive.join('; ') || `features, monitor, inference running` },
  );
  if (kafkaWrong.length > 0) row.notes.push(...kafkaWrong.slice(0, 12));
  if (http.unanswered > 0) row.notes.push(`${http.unanswered} invalid requests were refused by closing the connection (oversized bodies)`);
  return row;
}
