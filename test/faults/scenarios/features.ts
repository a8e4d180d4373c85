/**
 * Scenario 1, the feature pipeline under faults. Events (some out of order, late, delivered
 * twice or malformed) are published steadily to a topic while the pipeline process
 * (`services/features`) consumes them, and, one after the other:
 * - it is killed with SIGKILL at random moments and restarted, several times;
 * - a second member joins the consumer group, takes partitions, and leaves (SIGTERM): two
 *   rebalances;
 * - a broker that leads partitions of the topic is marked down through the mock cluster's
 *   control channel, and up again after a while;
 * - its Redis (a private, durable redis-server: the shared one is left alone) is killed
 *   while batches are being written, and restarted.
 * Then the verifier (lib/feature-verifier.ts) compares the store with a run that never
 * crashed and the dead-letter topic with the records that run set aside.
 */
import { createRandom, RedisOnlineStore, type OutgoingRecord } from '@tributary/shared';
import { createTopic, setBrokerDown } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import type { Context } from '../lib/context.js';
import { verifyFeatures } from '../lib/feature-verifier.js';
import { partitionsLedBy, Publisher } from '../lib/kafka.js';
import { metricNow } from '../lib/metrics.js';
import { startService, type ServiceProcess } from '../lib/processes.js';
import { PrivateRedis } from '../lib/redis-server.js';
import { emptyRow, type Row } from '../lib/report.js';

const LATENESS_MS = 5 * 60_000;
const USERS = 3_000;
const MERCHANTS = 300;
/** Event times step this much per event, from 90 minutes ago: a run never reaches the present. */
const STEP_MS = 15;
const MAX_EVENTS = Math.floor((88 * 60_000) / STEP_MS);

/** A seeded stream of transaction records: mostly in order, 5 % out of order within the lateness, 0.5 % late, 1 % twice, 0.1 % malformed. */
export function transactionStream(seed: number, start: number) {
  const random = createRandom(seed);
  let i = 0;
  return {
    get published() {
      return i;
    },
    next(count: number): OutgoingRecord[] {
      const records: OutgoingRecord[] = [];
      for (const end = Math.min(MAX_EVENTS, i + count); i < end; i++) {
        const user = `u${random.int(USERS)}`;
        let ts = start + i * STEP_MS;
        const roll = random.next();
        if (roll < 0.05) ts -= random.int(LATENESS_MS / 2);
        else if (roll < 0.055) ts -= LATENESS_MS + 60_000 + random.int(10 * 60_000);
        const event = {
          event_id: `e${i}`,
          user_id: user,
          merchant_id: `m${random.int(MERCHANTS)}`,
          amount: Math.round(random.next() * 50_000) / 100,
          currency: 'USD',
          country: random.next() < 0.9 ? 'US' : 'GB',
          channel: (['web', 'app', 'pos'] as const)[random.int(3)],
          ts,
        };
        if (random.next() < 0.001) records.push({ key: user, value: `{"event_id": "broken-${i}", "amount": ` });
        records.push({ key: user, value: JSON.stringify(event) });
        if (random.next() < 0.01) records.push({ key: user, value: JSON.stringify(event) });
      }
      return records;
    },
  };
}

async function applied(member: ServiceProcess): Promise<number> {
  return metricNow(member.url!, 'tributary_pipeline_events_total', { outcome: 'applied' }).catch(() => 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function featurePipelineScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('1. feature pipeline');
  const run = ctx.name('features');
  const topic = `${run}-transactions`;
  const deadLetterTopic = `${run}-dead-letter`;
  const random = createRandom(ctx.seed);
  const redis = await PrivateRedis.start({ durable: true });
  ctx.defer(() => redis.stop());
  const partitions = ctx.mode === 'full' ? 32 : 16;
  await createTopic(ctx.brokers, topic, partitions);
  await createTopic(ctx.brokers, deadLetterTopic, 1);

  const env = {
    KAFKA_BROKERS: ctx.brokers.join(','),
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `${run}:`,
    TOPIC_TRANSACTIONS: topic,
    TOPIC_DEAD_LETTER: deadLetterTopic,
    TOPIC_LABELS: `${run}-labels`,
    TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
    CONSUMER_GROUP_PREFIX: run,
    KAFKA_SESSION_TIMEOUT: '6s',
    ALLOWED_LATENESS: '5m',
    LOG_LEVEL: 'info',
  };
  const members: ServiceProcess[] = [];
  ctx.defer(async () => {
    for (const member of members) await member.kill();
  });
  let incarnation = 0;
  const start = async (label = `features#${++incarnation}`) => {
    // The delayed assigner works around the mock cluster's SyncGroup race when a member joins (test support, as in crash.int.test.ts).
    const member = await startService('features', label, { env, preload: ['./test/support/delayed-assigner.ts'] });
    members.push(member);
    return member;
  };
  const appliedMore = async (member: ServiceProcess, what: string, timeoutMs = 120_000) => {
    const before = await applied(member);
    try {
      await waitFor(async () => (await applied(member)) > before, { timeoutMs, intervalMs: 200, what });
    } catch (error) {
      // What the stalled process last said (its warnings name the failing batch or flush).
      throw new Error(`${(error as Error).message}\n${member.label} last wrote:\n${member.output().slice(-6000)}`);
    }
  };

  // Steady publishing, in slices every 100 ms, until the faults are over.
  const publisher = new Publisher(ctx.brokers, `${run}-producer`);
  ctx.defer(() => publisher.close());
  const stream = transactionStream(ctx.seed, Date.now() - 90 * 60_000);
  let publishing = true;
  const slice = Math.max(1, Math.round(ctx.sizes.featureRate / 10));
  const publishingDone = (async () => {
    while (publishing && stream.published < MAX_EVENTS) {
      await publisher.publish(topic, stream.next(slice));
      await sleep(100);
    }
  })();
  ctx.defer(async () => {
    publishing = false;
    await publishingDone.catch(() => undefined);
  });

  const faults: string[] = [];
  let member = await start();
  await waitFor(async () => (await applied(member)) > 0, { timeoutMs: 120_000, what: 'the pipeline to apply events' });

  // 1. SIGKILL at random moments while it applies events.
  for (let k = 0; k < ctx.sizes.featureKills; k++) {
    await sleep(random.int(3_000));
    await member.kill();
    ctx.log(`features: SIGKILL ${k + 1} of ${ctx.sizes.featureKills} (${stream.published} events published)`);
    member = await start();
    await appliedMore(member, `the pipeline to apply events after SIGKILL ${k + 1}`);
  }
  faults.push(`${ctx.sizes.featureKills}× SIGKILL`);

  // 2. A consumer-group rebalance: a second member joins, takes partitions, and leaves.
  const second = await start('features#joined');
  await waitFor(async () => (await applied(second)) > 0, {
    timeoutMs: 120_000,
    intervalMs: 250,
    what: 'the second member to get partitions',
  });
  await sleep(1_000 + random.int(2_000));
  await second.stop();
  await appliedMore(member, 'the first member to take its partitions back');
  ctx.log(`features: a member joined (applied ${await applied(member)}) and left`);
  faults.push('member +1/−1');

  // 3. A broker that leads partitions of the topic, down and up.
  const leaders = await partitionsLedBy(ctx.brokers, topic);
  const broker = [...leaders.entries()].sort((a, b) => b[1].length - a[1].length)[0]![0];
  await setBrokerDown(broker, true);
  ctx.log(`features: broker ${broker} down (leads partitions ${leaders.get(broker)!.join(',')})`);
  await sleep(ctx.sizes.brokerDownMs);
  await setBrokerDown(broker, false);
  await appliedMore(member, 'the pipeline to apply events after the broker came back', 180_000);
  faults.push(`broker ${broker} down ${ctx.sizes.brokerDownMs / 1000} s`);

  // 4. Redis killed mid-batch (events flow all along, flushes every 50 ms) and restarted.
  await sleep(random.int(1_000));
  await redis.kill();
  ctx.log('features: Redis killed');
  await sleep(ctx.sizes.redisDownMs);
  await redis.restart();
  await appliedMore(member, 'the pipeline to apply events after Redis came back', 180_000);
  faults.push(`Redis SIGKILL, ${ctx.sizes.redisDownMs / 1000} s down`);

  publishing = false;
  await publishingDone;
  ctx.log(`features: ${stream.published} events published (${publisher.acked} records acknowledged, ${publisher.retries} sends retried)`);

  const store = new RedisOnlineStore({ url: redis.url, keyPrefix: `${run}:` });
  ctx.defer(() => store.close());
  const verdict = await verifyFeatures({
    brokers: ctx.brokers,
    topic,
    deadLetterTopic,
    store,
    allowedLatenessMs: LATENESS_MS,
    waitMs: 180_000,
    log: ctx.log,
  });

  row.faults = faults.join(', ');
  row.produced = verdict.produced;
  row.lost = verdict.lost;
  row.doubled = verdict.doubled;
  const crashed = members.map((m) => m.unexpectedExit).filter((e): e is string => e !== null);
  const reasons = Object.entries(verdict.rejected)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  row.checks.push(
    {
      name: 'features equal the reference (a run that never crashed)',
      ok: verdict.mismatches === 0,
      detail:
        `${verdict.mismatches} of ${verdict.reads} entity reads differ` +
        (verdict.convergedAfter === null
          ? ''
          : verdict.convergedAfter === 0
            ? ' (equal at the first comparison)'
            : ` (equal after ${verdict.convergedAfter.toFixed(0)} s)`),
    },
    {
      name: 'every record set aside is on the dead-letter topic with its reason',
      ok: verdict.deadLetters.missing === 0 && verdict.deadLetters.wrongReason === 0 && verdict.deadLetters.unexpected === 0,
      detail: `${verdict.deadLetters.found} of ${verdict.deadLetters.expected} (${reasons}); ${verdict.deadLetters.wrongReason} with another reason; ${verdict.deadLetters.unexpected} applied records there too`,
    },
    {
      name: 'the whole topic was still on the broker for the reference',
      ok: verdict.truncated.length === 0,
      detail: verdict.truncated.join(',') || 'yes',
    },
    {
      name: 'no pipeline process exited unless killed',
      ok: crashed.length === 0,
      detail: crashed.join('; ') || `${members.length} processes`,
    },
  );
  const logged = (pattern: RegExp) => members.reduce((n, m) => n + (m.output().match(pattern) ?? []).length, 0);
  row.notes.push(
    `the faults hit: the pipeline processes logged ${logged(/feature batch failed/g)} failed batches and ` +
      `${logged(/feature flush failed/g)} failed flushes, each retried`,
  );
  row.notes.push(
    `${verdict.applied} events applied by the reference, ${verdict.duplicates} duplicate deliveries dropped; ` +
      `${publisher.acked} records acknowledged to the producer (${verdict.produced - publisher.acked} extra on the log from retried sends)`,
  );
  return row;
}
