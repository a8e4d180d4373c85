/**
 * The monitor on the real broker and Redis, topics of 4 partitions: every labelled
 * prediction is joined exactly once, whether its label was consumed before or after it, and
 * so is every shadow prediction of a labelled request (logged with its champion, or after
 * the label); a second monitor replaying both topics over the same join store gets the same
 * answers (each record as it was first answered), and joins nothing anew.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger, createRegistry, KafkaEventLog, type OutgoingRecord, type Registry } from '@tributary/shared';
import { realServices } from '../../../test/integration/services.js';
import { createTopic } from '../../../test/support/topics.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';
import { RedisJoinStore } from '../src/join-store.js';
import { startMonitor } from '../src/monitor.js';

const services = realServices();
const DAY = 86_400_000;
const HOUR = 3_600_000;

describe.skipIf(!services.kafkaBrokers || !services.redisUrl)(
  `monitor on Kafka and Redis${services.kafkaBrokers && services.redisUrl ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('monitor');
    const prefix = `${run}:`;
    const topics = { predictions: `${run}-predictions`, labels: `${run}-labels`, deadLetter: `${run}-dead-letter` };
    const eventLog = new KafkaEventLog({ brokers: services.kafkaBrokers ?? [], clientId: run, sessionTimeout: 6_000 });

    afterAll(async () => {
      await eventLog.close();
      const redis = new Redis(services.redisUrl!);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    });

    const boot = (group: string, registry: Registry) =>
      startMonitor({
        eventLog,
        topics,
        groupId: `${run}-${group}`,
        registry,
        logger: createLogger('test', 'silent'),
        joins: new RedisJoinStore({ url: services.redisUrl! }, prefix, DAY, HOUR),
        joinWindowMs: DAY,
        thresholdOf: () => 0.5,
        profileOf: () => null,
        maxSeries: 10,
      });
    const total = async (registry: Registry, pattern: RegExp) =>
      [...(await registry.metrics()).matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
    const accepted = /^tributary_monitor_records_total\{[^}]*outcome="accepted"\} (\d+)$/gm;
    const outcome = (kind: string) => new RegExp(`^tributary_monitor_joins_total\\{stream="[a-z]+",outcome="${kind}"\\} (\\d+)$`, 'gm');
    const joinCounts = async (registry: Registry) =>
      (await registry.metrics())
        .split('\n')
        .filter((line) => line.startsWith('tributary_monitor_joins_total{'))
        .sort();

    it('joins each labelled prediction once, whichever topic is consumed first, and a replay gets the first answers again', async () => {
      for (const topic of Object.values(topics)) await createTopic(services.kafkaBrokers!, topic, 4);
      const now = Date.now();
      const records = 400 + 200 + 20 + 10 + 100;
      const prediction = (i: number, shadow = false): OutgoingRecord => ({
        key: `r${i}`,
        value: JSON.stringify({
          prediction_id: shadow ? `s${i}` : `p${i}`,
          request_id: `r${i}`,
          model: { name: 'fraud_detector', version: shadow ? '2' : '1' },
          variant: shadow ? 'shadow' : i % 3 === 0 ? 'canary' : 'champion',
          score: (i % 10) / 10,
          predicted_at: now - 60_000 + i,
          latency_ms: 1,
        }),
      });
      const label = (id: string, value: 0 | 1): OutgoingRecord => ({
        key: id,
        value: JSON.stringify({ request_id: id, label: value, ts: now }),
      });
      // 400 predictions; the even ones get a label: those of the last 100 are consumed before
      // any prediction is published, the others come after; 20 labels are sent twice (label 1
      // again: 10 the same, duplicates, and 10 that said 0 first, corrections), and
      // 10 labels are for requests that have no prediction. Every fourth request also has a
      // shadow prediction (all labelled): half logged with the predictions, half after every
      // label was consumed.
      const labelled = Array.from({ length: 200 }, (_, k) => 2 * k);
      const labelOf = (i: number) => label(`r${i}`, i % 4 === 0 ? 0 : 1);
      const first = createRegistry({ defaultMetrics: false });
      let monitor = await boot('first', first);
      try {
        await eventLog.publish(topics.labels, labelled.filter((i) => i >= 300).map(labelOf));
        await waitFor(async () => (await total(first, accepted)) === 50, { timeoutMs: 30_000, what: 'the early labels consumed' });
        await eventLog.publish(topics.predictions, [
          ...Array.from({ length: 400 }, (_, i) => prediction(i)),
          ...Array.from({ length: 50 }, (_, k) => prediction(8 * k, true)),
        ]);
        await eventLog.publish(topics.labels, [
          ...labelled.filter((i) => i < 300).map(labelOf),
          ...labelled.slice(0, 20).map((i) => label(`r${i}`, 1)),
          ...Array.from({ length: 10 }, (_, k) => label(`orphan${k}`, 0)),
        ]);
        await waitFor(async () => (await total(first, accepted)) === records - 50, { timeoutMs: 30_000, what: 'every label consumed' });
        await eventLog.publish(
          topics.predictions,
          Array.from({ length: 50 }, (_, k) => prediction(8 * k + 4, true)),
        );
        await waitFor(async () => (await total(first, accepted)) === records, { timeoutMs: 30_000, what: 'every record consumed' });
        // Every labelled prediction joined once (joined counts pairs): the early labels when
        // their predictions came (at least those 50, and the 50 late shadows, on the prediction
        // stream), the others whichever topic was read first.
        expect(await total(first, outcome('joined'))).toBe(200 + 100);
        expect(
          await total(first, /^tributary_monitor_joins_total\{stream="predictions",outcome="joined"\} (\d+)$/gm),
        ).toBeGreaterThanOrEqual(50 + 50);
        expect(await total(first, outcome('duplicate'))).toBe(10);
        expect(await total(first, outcome('corrected'))).toBe(10);
        // The first side of each labelled request (or both predictions, when a champion and
        // its shadow came before the label), the unlabelled predictions, the orphan labels.
        const waiting = await total(first, outcome('waiting'));
        expect(waiting).toBeGreaterThanOrEqual(200 + 200 + 10);
        expect(waiting).toBeLessThanOrEqual(200 + 200 + 10 + 50);
        expect(await total(first, /^tributary_model_labelled_predictions\{[^}]*window="1h"\} (\d+)$/gm)).toBe(300);
        expect(await total(first, /^tributary_model_labelled_predictions\{[^}]*variant="shadow",window="1h"\} (\d+)$/gm)).toBe(100);
        expect(await total(first, /^tributary_monitor_joins_again_total\{[^}]*\} (\d+)$/gm)).toBe(0);
      } finally {
        await monitor.stop();
      }
      const firstCounts = await joinCounts(first);

      // A new group replays both topics from the beginning over the same join store.
      const second = createRegistry({ defaultMetrics: false });
      monitor = await boot('second', second);
      try {
        await waitFor(async () => (await total(second, accepted)) === records, { timeoutMs: 30_000, what: 'every record replayed' });
        // Each record answered as at first: the same joins (all answered again: none made anew), waits and duplicates.
        expect(await joinCounts(second)).toEqual(firstCounts);
        expect(await total(second, /^tributary_monitor_joins_again_total\{[^}]*\} (\d+)$/gm)).toBe(200 + 100);
        expect(await total(second, /^tributary_model_labelled_predictions\{[^}]*window="1h"\} (\d+)$/gm)).toBe(300);
      } finally {
        await monitor.stop();
      }
    });
  },
);
