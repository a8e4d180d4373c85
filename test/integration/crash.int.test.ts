/**
 * Exactly-once effect under kill -9 and rebalances (as Kafka Streams' system tests): 200,000 events with
 * out-of-order, duplicated, late and malformed records are consumed by the feature
 * pipeline process (`services/features`, with its start script's node flags), which is killed with SIGKILL at random moments
 * while it applies them and restarted each time. At the end every entity's features in
 * Redis must equal exactly those of a run that never crashed (the same pipeline code run
 * once, in memory, over the same partitions), and every late or malformed record must be
 * on the dead-letter topic with its reason. A second test runs two pipeline processes in one
 * consumer group, adds the second mid-stream and kills the first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createFeatureProcessor } from '@tributary/features';
import {
  createRandom,
  fraud,
  KafkaEventLog,
  MemoryOnlineStore,
  readFeatureValues,
  RedisOnlineStore,
  type DeadLetter,
  type EntityKey,
  type LogRecord,
  type OutgoingRecord,
  type StoredFields,
} from '@tributary/shared';
import { serviceNodeFlags } from '../support/service-flags.js';
import { createTopic, partitionerFor } from '../support/topics.js';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);
const root = fileURLToPath(new URL('../..', import.meta.url));

const EVENTS = 200_000;
const USERS = 4_000;
const MERCHANTS = 400;
const KILLS = 5;
const LATENESS_MS = 5 * 60_000;

/** The event stream: mostly in order, some out of order within the lateness, some late, duplicated or malformed. */
function generate(seed: number, now: number, count = EVENTS): { records: OutgoingRecord[]; late: number; malformed: number } {
  const random = createRandom(seed);
  const records: OutgoingRecord[] = [];
  let late = 0;
  let malformed = 0;
  const start = now - 90 * 60_000;
  for (let i = 0; i < count; i++) {
    const user = `u${random.int(USERS)}`;
    let ts = start + Math.floor((i / count) * 85 * 60_000);
    const roll = random.next();
    if (roll < 0.05)
      ts -= random.int(LATENESS_MS / 2); // out of order, within the lateness
    else if (roll < 0.055) {
      ts -= LATENESS_MS + 60_000 + random.int(10 * 60_000); // late beyond the lateness
      late++; // (a partition's watermark decides which of these are late)
    }
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
    if (random.next() < 0.001) {
      records.push({ key: user, value: `{"event_id": "broken-${i}", "amount": ` });
      malformed++;
    }
    records.push({ key: user, value: JSON.stringify(event) });
    if (random.next() < 0.01) records.push({ key: user, value: JSON.stringify(event) }); // a duplicate delivery
  }
  return { records, late, malformed };
}

/** Starts the feature service as its own process for the run; resolves with it and its metrics URL. */
async function startPipeline(run: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  let output = '';
  // The delayed assigner works around the mock cluster's SyncGroup race when a member joins.
  const child = spawn(
    process.execPath,
    [...serviceNodeFlags('features'), '--import', 'tsx', '--import', './test/support/delayed-assigner.ts', 'services/features/src/main.ts'],
    {
      cwd: root,
      env: {
        ...process.env,
        PORT: '0',
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: services.redisUrl!,
        REDIS_KEY_PREFIX: `${run}:`,
        TOPIC_TRANSACTIONS: `${run}-transactions`,
        TOPIC_DEAD_LETTER: `${run}-dead-letter`,
        TOPIC_LABELS: `${run}-labels`,
        TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
        CONSUMER_GROUP_PREFIX: run,
        KAFKA_SESSION_TIMEOUT: '6s',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // A minute: a start compiles the code with tsx, slow on a loaded machine. On a timeout, what the process said.
  const url = await waitFor(() => /metrics on (http:\/\/[\d.]+:\d+)\/metrics/.exec(output)?.[1], {
    timeoutMs: 60_000,
    what: 'the pipeline to start',
  }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; its output:\n${output}`);
  });
  return { child, url, output: () => output };
}

async function appliedSoFar(url: string): Promise<number> {
  // Polled seconds apart, a keep-alive connection the server has just closed fails once
  // ("other side closed"); the retry opens a new one. A process that is gone fails both.
  const get = async () => (await fetch(`${url}/metrics`)).text();
  const text = await get().catch(get);
  return Number(/tributary_pipeline_events_total\{topic="[^"]+",outcome="applied"\} (\d+)/.exec(text)?.[1] ?? 0);
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Publishes `records` in slices of `slice` every `pauseMs`, until all are out or `stop` is called. */
function publishSteadily(eventLog: KafkaEventLog, topic: string, records: OutgoingRecord[], pauseMs = 200, slice = 1_000) {
  const progress = {
    published: 0,
    stopped: false,
    done: Promise.resolve(),
    stop() {
      progress.stopped = true;
      return progress.done;
    },
  };
  progress.done = (async () => {
    while (!progress.stopped && progress.published < records.length) {
      await eventLog.publish(topic, records.slice(progress.published, progress.published + slice));
      progress.published += slice;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  })();
  return progress;
}

/**
 * The run that never crashed: the same partitions (the producer's partitioner), in the order
 * they were published, through the same code, once, in memory; then the number of entity
 * reads in Redis that differ from it, once Redis has caught up (or `applied`, the catching-up
 * process's count of applied events, has not grown for a minute).
 */
async function verify(
  run: string,
  records: OutgoingRecord[],
  now: number,
  store: RedisOnlineStore,
  eventLog: KafkaEventLog,
  applied: () => Promise<number>,
) {
  const topic = `${run}-transactions`;
  const partitionOf = await partitionerFor(services.kafkaBrokers!, topic);
  const consumed = new Map<number, LogRecord[]>();
  for (const record of records) {
    const partition = partitionOf(record.key);
    const list = consumed.get(partition) ?? [];
    consumed.set(partition, list);
    list.push({
      topic,
      partition,
      offset: String(list.length),
      key: record.key,
      value: Buffer.from(record.value),
      timestamp: now,
      headers: {},
    });
  }
  const example = fraud.fraudExample({ transactions: topic });
  const reference = new MemoryOnlineStore(() => now);
  const processor = createFeatureProcessor({
    store: reference,
    groups: example.groups,
    source: example.sources[0]!,
    allowedLatenessMs: LATENESS_MS,
    clock: () => now,
  });
  const expectedReasons: Record<string, number> = {};
  let expectedRejected = 0;
  for (const [partition, list] of consumed) {
    processor.open(topic, partition, -Infinity);
    const outcome = await processor.process({ topic, partition, records: list });
    expectedRejected += outcome.rejected.length;
    for (const r of outcome.rejected) expectedReasons[r.reason] = (expectedReasons[r.reason] ?? 0) + 1;
  }
  await processor.flush();
  const keys: EntityKey[] = [
    ...Array.from({ length: USERS }, (_, i) => ({ group: example.groups[0]!.id, entity: 'user_id', id: `u${i}` })),
    ...Array.from({ length: MERCHANTS }, (_, i) => ({ group: example.groups[1]!.id, entity: 'merchant_id', id: `m${i}` })),
  ];
  const expected = await reference.read(keys);
  const readAt = [now, now + 7 * 60_000, now + 61 * 60_000];
  const groupOf = keys.map((key) => example.groups.find((g) => g.id === key.group)!);
  const shown = (i: number, fields: StoredFields | null) =>
    readAt.map((at) => JSON.stringify(readFeatureValues(groupOf[i]!, fields, at).values));
  // The reference's reads, once: a comparison costs about a second of CPU, half of it on these.
  const wanted = keys.map((_, i) => shown(i, expected[i] ?? null));
  const mismatches = async () => {
    const actual = await store.read(keys);
    let count = 0;
    keys.forEach((_, i) => {
      shown(i, actual[i] ?? null).forEach((read, j) => {
        if (read !== wanted[i]![j]) count++;
      });
    });
    return count;
  };
  // Every record set aside is on the dead-letter topic with its reason (at least once: a replay may repeat it).
  // Read from now on: the group joins and reads while the pipeline catches up.
  const letters = new Map<string, DeadLetter>();
  const dlq = await eventLog.subscribe({
    groupId: `${run}-dlq`,
    topics: [`${run}-dead-letter`],
    fromBeginning: true,
    eachBatch: async (batch) => {
      for (const r of batch.records) {
        const letter = JSON.parse(r.value!.toString()) as DeadLetter;
        letters.set(`${letter.source.partition}:${letter.source.offset}`, letter);
      }
    },
  });
  // Caught up, or idle for a minute. A fixed deadline failed on busy machines while the last
  // process was still replaying; and an entity matches only once its last event is applied,
  // so the mismatches barely fall until the end: the wait follows the events it applies, and
  // compares only when the count stands still (comparing meanwhile took the CPU it needed).
  const waitStarted = Date.now();
  let remaining = await mismatches();
  for (let last = await applied(), since = Date.now(); remaining > 0 && Date.now() - since < 60_000;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const count = await applied();
    if (count > last) [last, since] = [count, Date.now()];
    else remaining = await mismatches();
  }
  const waitedSeconds = (Date.now() - waitStarted) / 1000;
  await waitFor(() => letters.size >= expectedRejected, { timeoutMs: 60_000, what: `${expectedRejected} dead letters` }).catch(
    () => undefined,
  );
  await dlq.stop();
  const reasons = [...letters.values()].reduce<Record<string, number>>((acc, l) => ({ ...acc, [l.reason]: (acc[l.reason] ?? 0) + 1 }), {});
  return {
    mismatches: remaining,
    reads: keys.length * readAt.length,
    waitedSeconds,
    letters: letters.size,
    expectedRejected,
    reasons,
    expectedReasons,
  };
}

/** A test run's names, connections and processes; everything is stopped and cleaned up after the suite. */
function useRun(prefix: string) {
  const run = uniqueName(prefix);
  const children: ChildProcess[] = [];
  const eventLog = ready ? new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: run, sessionTimeout: 6_000 }) : null;
  const store = ready ? new RedisOnlineStore({ url: services.redisUrl!, keyPrefix: `${run}:` }) : null;
  afterAll(async () => {
    for (const child of children) await kill(child);
    await eventLog?.close();
    if (store) {
      const keys = await store.client.keys(`${run}:*`);
      for (let i = 0; i < keys.length; i += 1000) await store.client.del(...keys.slice(i, i + 1000));
      await store.close();
    }
  });
  return { run, children, eventLog, store };
}

describe.skipIf(!ready)(
  `exactly once under kill -9${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const { run, children, eventLog, store } = useRun('crash');

    it(`applies ${EVENTS} events exactly once while killed ${KILLS} times`, async () => {
      const now = Date.now();
      const { records, late, malformed } = generate(7, now);
      // librdkafka's mock broker keeps only the newest ~5 MB of each partition: 32 partitions
      // hold the whole stream even if the pipeline falls behind while it is down.
      await createTopic(services.kafkaBrokers!, `${run}-transactions`, 32);
      // Published while the pipeline runs, faster than it applies them between restarts.
      const publishing = publishSteadily(eventLog!, `${run}-transactions`, records, 500, 5_000);

      // Kill it at random moments while it applies events: once this process has applied a random
      // number of them. At most 25,000 each, so every restarted process still has events to apply
      // however fast this machine applies them (a process replays what its predecessor did not write).
      const random = createRandom(11);
      let kills = 0;
      while (kills < KILLS) {
        const { child, url } = await startPipeline(run);
        children.push(child);
        const killAt = 1_000 + random.int(24_000);
        await waitFor(async () => (await appliedSoFar(url)) >= killAt, {
          timeoutMs: 120_000,
          intervalMs: 20,
          what: `the pipeline to apply ${killAt} events`,
        });
        await kill(child);
        kills++;
      }
      await publishing.done;
      const last = await startPipeline(run);
      children.push(last.child);

      const result = await verify(run, records, now, store!, eventLog!, () => appliedSoFar(last.url));
      console.log(
        `crash test: ${records.length} records, ${kills} kills (SIGKILL), ${result.mismatches} mismatching entity reads of ${result.reads}` +
          ` (the last process applied ${await appliedSoFar(last.url)} events; waited ${result.waitedSeconds.toFixed(0)} s for it to catch up)`,
      );
      // What the last process did, to tell a slow catch-up from a stuck one.
      if (result.mismatches !== 0) console.log(`the last pipeline's output ends:\n${last.output().slice(-4000)}`);
      expect(result.mismatches).toBe(0);
      expect(result.letters).toBe(result.expectedRejected);
      expect(result.reasons).toEqual(result.expectedReasons);
      expect(result.reasons.malformed).toBe(malformed);
      // Late records (some delivered twice) were generated, and the watermark caught them.
      expect(result.reasons.late).toBeGreaterThan(late / 2);
    }, 600_000);
  },
);

describe.skipIf(!ready)(`exactly once across rebalances of two pipeline processes${ready ? '' : ' (skipped)'}`, () => {
  const { run, children, eventLog, store } = useRun('rebalance');

  it('a second member joins mid-stream, then the first is killed: every event still counts once', async () => {
    const now = Date.now();
    // More records than needed: publishing goes on until the second member has taken part,
    // however long the machine takes to start it and rebalance.
    const { records: pool } = generate(13, now, 150_000);
    await createTopic(services.kafkaBrokers!, `${run}-transactions`, 8);
    const publishing = publishSteadily(eventLog!, `${run}-transactions`, pool);
    const first = await startPipeline(run);
    children.push(first.child);
    await waitFor(async () => (await appliedSoFar(first.url)) > 0, { timeoutMs: 60_000, what: 'the first member to apply events' });
    // A second member: the group rebalances and the partitions are shared.
    const second = await startPipeline(run);
    children.push(second.child);
    await waitFor(async () => (await appliedSoFar(second.url)) > 0, { timeoutMs: 120_000, what: 'the second member to get partitions' });
    // The first dies: its partitions move to the second after the session timeout.
    await kill(first.child);
    await waitFor(() => publishing.published >= 60_000 || publishing.published >= pool.length, {
      timeoutMs: 120_000,
      what: '60,000 records out',
    });
    await publishing.stop();
    const records = pool.slice(0, publishing.published);
    const result = await verify(run, records, now, store!, eventLog!, () => appliedSoFar(second.url));
    console.log(
      `rebalance test: ${records.length} records, 2 members, 1 killed, ${result.mismatches} mismatching entity reads of ${result.reads}`,
    );
    expect(result.mismatches).toBe(0);
    expect(result.letters).toBe(result.expectedRejected);
    expect(await appliedSoFar(second.url)).toBeGreaterThan(0);
  }, 600_000);
});
