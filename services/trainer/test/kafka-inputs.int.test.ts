/**
 * The trainer's tools read Kafka topics (through the event log, every partition to its end)
 * as they read files: the training set from the predictions and labels topics, the backfill
 * training set and batch scores from the transactions topic, equal to the ones built from
 * the same records in files; and a label counts from when it was logged, when that is later
 * than its `ts`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRandom, fraud, KafkaEventLog } from '@tributary/shared';
import { realServices } from '../../../test/integration/services.js';
import { servedPrediction } from '../../../test/support/served-prediction.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { runTrainerCli } from './cli.js';

const services = realServices();
const MODEL_DIR = new URL('../../../models/fraud_detector/1', import.meta.url).pathname;
const HOUR = 3_600_000;

describe.skipIf(!services.kafkaBrokers)(
  `trainer inputs from Kafka${services.kafkaBrokers ? '' : ` (skipped: ${services.missing('kafka')})`}`,
  () => {
    const run = uniqueName('trainer');
    const topics = { predictions: `${run}-predictions`, labels: `${run}-labels`, transactions: `${run}-transactions` };
    const now = Date.now();
    let dir: string;
    let eventLog: KafkaEventLog;
    const env = () => ({ KAFKA_BROKERS: services.kafkaBrokers!.join(','), KAFKA_SESSION_TIMEOUT: '6s' });

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tributary-trainer-kafka-'));
      eventLog = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: run, sessionTimeout: 6_000 });
      const random = createRandom(3);
      const transactions: fraud.Transaction[] = Array.from({ length: 40 }, (_, i) => ({
        event_id: `t${i}`,
        user_id: `u${random.int(4)}`,
        merchant_id: `m${random.int(3)}`,
        amount: Math.round(random.next() * 30_000) / 100,
        currency: 'EUR',
        country: random.next() < 0.7 ? 'FR' : 'DE',
        channel: 'app',
        ts: now - 3 * HOUR + i * 4 * 60_000,
      }));
      // Predictions logged for every other transaction, two of them twice (a retried request).
      const predictions = transactions
        .filter((_, i) => i % 2 === 1)
        .flatMap((t, i) => {
          const features = Object.fromEntries(fraud.FRAUD_MODEL_FEATURES.map((f, k) => [f, (i * 7 + k) % 5]));
          const record = servedPrediction(t, `p${i}`, features, 0.2);
          return i < 2 ? [record, { ...record, prediction_id: `p${i}-again`, predicted_at: record.predicted_at + 1_000 }] : [record];
        });
      // Labels with a `ts` two hours ago for some transactions, logged now.
      const labels = transactions
        .filter((_, i) => i % 3 !== 0)
        .map((t, i) => ({ request_id: t.event_id, label: i % 4 === 0 ? 1 : 0, ts: now - 2 * HOUR }));
      const files = { transactions, predictions, labels };
      for (const [name, records] of Object.entries(files)) {
        await writeFile(join(dir, `${name}.ndjson`), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
        const topic = topics[name as keyof typeof topics];
        const key = (r: Record<string, unknown>) => String(r.user_id ?? r.request_id);
        await eventLog.publish(
          topic,
          records.map((r) => ({ key: key(r as Record<string, unknown>), value: JSON.stringify(r) })),
        );
      }
    }, 60_000);

    afterAll(async () => {
      await eventLog?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const trainingSet = (args: string[]) => runTrainerCli('training-set-cli.ts', [...args, '--model', MODEL_DIR], { cwd: dir, env: env() });

    it('builds the same training set from the topics as from the files', async () => {
      const cutoff = String(now + 60_000);
      const fromTopics = await trainingSet([
        'log',
        '--predictions-topic',
        topics.predictions,
        '--labels-topic',
        topics.labels,
        '--cutoff',
        cutoff,
      ]);
      expect(fromTopics.stderr).toMatch(/2 duplicate request ids/);
      expect(fromTopics.code).toBe(0);
      const fromFiles = await trainingSet(['log', '--predictions', 'predictions.ndjson', '--labels', 'labels.ndjson', '--cutoff', cutoff]);
      expect(fromFiles.code).toBe(0);
      const [a, b] = [JSON.parse(fromTopics.stdout), JSON.parse(fromFiles.stdout)];
      expect(a.rows.length).toBeGreaterThan(5);
      expect({ ...a, stats: null }).toEqual({ ...b, stats: null });

      const backfillTopics = await trainingSet([
        'backfill',
        '--events-topic',
        topics.transactions,
        '--labels-topic',
        topics.labels,
        '--cutoff',
        cutoff,
      ]);
      expect(backfillTopics.code).toBe(0);
      const backfillFiles = await trainingSet([
        'backfill',
        '--events',
        'transactions.ndjson',
        '--labels',
        'labels.ndjson',
        '--cutoff',
        cutoff,
      ]);
      expect({ ...JSON.parse(backfillTopics.stdout), stats: null }).toEqual({ ...JSON.parse(backfillFiles.stdout), stats: null });
    }, 120_000);

    it('counts a label read from Kafka from when it was logged, not from an earlier ts', async () => {
      // Between the labels' ts (two hours ago) and when they were logged (now).
      const cutoff = String(now - HOUR);
      const args = ['--cutoff', cutoff, '--predictions'];
      const fromTopic = await trainingSet(['log', ...args, 'predictions.ndjson', '--labels-topic', topics.labels]);
      const fromFile = await trainingSet(['log', ...args, 'predictions.ndjson', '--labels', 'labels.ndjson']);
      // No label by the cut-off: no row, refused.
      expect(fromTopic.code).toBe(1);
      expect(fromTopic.stderr).toMatch(/^training-set: the training set has no rows: .* \([1-9]\d* labels arrived after the cut-off, /);
      expect(JSON.parse(fromFile.stdout).rows.length).toBeGreaterThan(0);
    }, 120_000);

    it('batch-predicts with features replayed from the topic as from the file', async () => {
      await writeFile(
        join(dir, 'requests.ndjson'),
        ['t10', 't25', 't39']
          .map((id, i) => ({
            request_id: id,
            entities: { user_id: `u${i}`, merchant_id: 'm1' },
            features: { amount: 40 + i, country: 'FR', channel: 'web' },
            at: now - HOUR + i,
          }))
          .map((r) => `${JSON.stringify(r)}\n`)
          .join(''),
      );
      const score = (source: string[]) =>
        runTrainerCli('batch-predict-cli.ts', ['--model', MODEL_DIR, '--requests', 'requests.ndjson', ...source], { cwd: dir, env: env() });
      const fromTopic = await score(['--events-topic', topics.transactions]);
      expect(fromTopic.code).toBe(0);
      const fromFile = await score(['--events', 'transactions.ndjson']);
      expect(fromTopic.stdout).toBe(fromFile.stdout);
      expect(fromTopic.stdout.trim().split('\n')).toHaveLength(3);
    }, 120_000);
  },
);
