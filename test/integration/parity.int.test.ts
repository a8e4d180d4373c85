/**
 * Online/offline parity (as Chronon's): a generated event log is streamed through the
 * real pipeline into real Redis; at a set of timestamps the served features are read; the
 * backfill CLI then replays the topic from Kafka through the same code and must give, at
 * the same timestamps, the same values (up to floating-point summation order).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startFeaturePipeline } from '@tributary/features';
import {
  createLogger,
  createRandom,
  createRegistry,
  fraud,
  KafkaEventLog,
  readFeatureValues,
  RedisOnlineStore,
  type OutgoingRecord,
} from '@tributary/shared';
import { partitionerFor } from '../support/topics.js';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);
const root = fileURLToPath(new URL('../..', import.meta.url));
const LATENESS = 5 * 60_000;
const START = Date.now() - 4 * 3_600_000;

/** Events with unique times over 3 hours; some arrive a little after later ones, some too late. */
function generate(count: number): { record: OutgoingRecord; time: number }[] {
  const random = createRandom(21);
  const inOrder = Array.from({ length: count }, (_, i) => {
    const time = START + i * 500;
    const user = `u${random.int(50)}`;
    return {
      time,
      record: {
        key: user,
        value: JSON.stringify({
          event_id: `p${i}`,
          user_id: user,
          merchant_id: `m${random.int(10)}`,
          amount: Math.round(random.next() * 10_000) / 100,
          currency: 'USD',
          country: random.next() < 0.8 ? 'US' : 'DE',
          channel: 'app',
          ts: time,
        }),
      },
    };
  });
  // Arrival order: move some events later (delayed within the lateness, or far beyond it).
  const arrival = inOrder.map((e, i) => ({ ...e, position: i }));
  for (const e of arrival) {
    const roll = random.next();
    if (roll < 0.1)
      e.position += random.int(LATENESS / 500); // within the lateness
    else if (roll < 0.12) e.position += LATENESS / 500 + 60 + random.int(2_000); // late
  }
  return arrival.sort((a, b) => a.position - b.position);
}

describe.skipIf(!ready)(
  `online/offline parity on Kafka and Redis${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('parity');
    const topic = `${run}-transactions`;
    const eventLog = ready ? new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: run, sessionTimeout: 6_000 }) : null;
    const store = ready ? new RedisOnlineStore({ url: services.redisUrl!, keyPrefix: `${run}:` }) : null;

    afterAll(async () => {
      await eventLog?.close();
      if (store) {
        const keys = await store.client.keys(`${run}:*`);
        if (keys.length > 0) await store.client.del(...keys);
        await store.close();
      }
    });

    it('the backfill replays what the pipeline served, at every read time', async () => {
      const events = generate(20_000);
      // The producer's partitioner tells which partition each event goes to.
      await eventLog!.publish(topic, [events[0]!.record]);
      const partitionOf = await partitionerFor(services.kafkaBrokers!, topic);
      const byPartition = new Map<number, typeof events>();
      for (const e of events.slice(1)) {
        const p = partitionOf(e.record.key);
        byPartition.set(p, [...(byPartition.get(p) ?? []), e]);
      }

      const example = fraud.fraudExample({ transactions: topic, labelledTransactions: `${run}-labelled-transactions` });
      const registry = createRegistry({ defaultMetrics: false });
      const pipeline = await startFeaturePipeline({
        eventLog: eventLog!,
        store: store!,
        sources: example.sources,
        groups: example.groups,
        deadLetterTopic: `${run}-dead-letter`,
        allowedLatenessMs: LATENESS,
        groupId: `${run}-features`,
        registry,
        logger: createLogger('parity', 'silent'),
      });
      const consumed = async () => {
        const text = (await registry.getSingleMetricAsString('tributary_pipeline_events_total')) ?? '';
        return [...text.matchAll(/\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
      };

      const queries: { entity: string; id: string; at: number }[] = [];
      const served: Record<string, unknown>[] = [];
      const cursor = new Map<number, number>();
      let published = 1;
      try {
        for (let k = 1; k <= 10; k++) {
          const at = START + k * 18 * 60_000;
          // Each partition's records up to its first one stamped after `at`: what has arrived by then.
          const chunk: OutgoingRecord[] = [];
          for (const [p, list] of byPartition) {
            let i = cursor.get(p) ?? 0;
            let max = -Infinity;
            while (i < list.length && Math.max(max, list[i]!.time) <= at) max = Math.max(max, list[i++]!.time);
            chunk.push(...list.slice(cursor.get(p) ?? 0, i).map((e) => e.record));
            cursor.set(p, i);
          }
          for (let i = 0; i < chunk.length; i += 2_000) await eventLog!.publish(topic, chunk.slice(i, i + 2_000));
          published += chunk.length;
          await waitFor(async () => (await consumed()) >= published, {
            timeoutMs: 60_000,
            what: `the pipeline to consume ${published} records`,
          });
          await pipeline.flush();
          for (const [entity, ids] of [
            ['user_id', ['u0', 'u13', 'u49']],
            ['merchant_id', ['m0', 'm9']],
          ] as const) {
            const group = example.groups.find((g) => g.definition.entity === entity)!;
            const states = await store!.read(ids.map((id) => ({ group: group.id, entity, id })));
            ids.forEach((id, i) => {
              queries.push({ entity, id, at });
              served.push({ [group.definition.name]: readFeatureValues(group, states[i] ?? null, at).values });
            });
          }
        }
      } finally {
        await pipeline.stop();
      }

      const dir = await mkdtemp(join(tmpdir(), 'parity-'));
      try {
        await writeFile(join(dir, 'queries.ndjson'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
        const { stdout } = await promisify(execFile)(
          process.execPath,
          ['--import', 'tsx', 'services/features/src/backfill-cli.ts', '--topic', topic, '--queries', join(dir, 'queries.ndjson')],
          {
            cwd: root,
            env: { ...process.env, KAFKA_BROKERS: services.kafkaBrokers!.join(','), ALLOWED_LATENESS: '5m' },
            maxBuffer: 64 * 1024 * 1024,
          },
        );
        const offline = stdout
          .trim()
          .split('\n')
          .map((line) => (JSON.parse(line) as { features: Record<string, Record<string, unknown>> }).features);
        expect(offline).toHaveLength(served.length);
        let mismatches = 0;
        offline.forEach((row, i) => {
          for (const [group, values] of Object.entries(served[i] as Record<string, Record<string, unknown>>)) {
            for (const [name, value] of Object.entries(values)) {
              const other = row[group]![name];
              const same =
                typeof value === 'number' && typeof other === 'number'
                  ? Math.abs(value - other) <= 1e-9 * Math.max(1, Math.abs(value))
                  : value === other;
              if (!same) {
                mismatches++;
                if (mismatches <= 5)
                  console.log(
                    `parity: ${JSON.stringify(queries[i])} ${group}.${name}: online ${String(value)} vs backfill ${String(other)}`,
                  );
              }
            }
          }
        });
        console.log(`parity: ${served.length} reads compared, ${mismatches} mismatching values`);
        expect(mismatches).toBe(0);
        expect(new Set(served.map((s) => JSON.stringify(s))).size).toBeGreaterThan(30);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 300_000);
  },
);
