/**
 * Topics read as streams: a topic's partitions come interleaved, a fetched batch at a time, and
 * the training sets built from them (log and backfill modes) are the ones built from the same
 * records read partition by partition, whole, as topics were read before: the same rows,
 * stats and records set aside. The generated log has what makes the order of partitions
 * matter: events out of order and late, events and predictions published again later on
 * another partition (the first in partition order is kept, not the first read), corrected
 * labels arriving at the same instant on two partitions (the later in partition order wins,
 * not the last read), labels dated before their transaction and after the cut-off, and
 * unreadable records on every partition.
 */
import { describe, expect, it } from 'vitest';
import { createRandom, fraud, MemoryEventLog, readTopicToEnd, type OutgoingRecord } from '@tributary/shared';
import { trainingSetFromBackfill, trainingSetFromPredictionLog, type ModelFeatures } from '../src/build-training-set.js';
import { readTopic, type LogInput } from '../src/log-input.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const TRANSACTIONS = 5_000;

const model: ModelFeatures = {
  name: 'fraud_detector',
  version: '1',
  features: ['request:amount', 'user_transactions:count_1h', 'user_transactions:amount_sum_1h', 'merchant_transactions:count_24h'],
};

/** The generated log, published to an in-memory event log of 4 partitions a topic; the cut-off is an hour from now. */
async function generatedLog(): Promise<{ eventLog: MemoryEventLog; cutoff: number }> {
  const eventLog = new MemoryEventLog();
  await eventLog.ensureTopics(['transactions', 'labels', 'predictions'].map((name) => ({ name, partitions: 4 })));
  const random = createRandom(11);
  const now = Date.now();
  const cutoff = now + HOUR;
  const start = now - 7 * HOUR;
  const topics: Record<string, OutgoingRecord[]> = { transactions: [], predictions: [], labels: [] };
  // Published after the others: at the end of their partitions, read after records of the other partitions.
  const again: Record<string, OutgoingRecord[]> = { transactions: [], predictions: [], labels: [] };
  const add = (to: Record<string, OutgoingRecord[]>, topic: string, key: string, value: unknown) =>
    to[topic]!.push({ key, value: JSON.stringify(value) });
  for (let i = 0; i < TRANSACTIONS; i++) {
    // In time order mostly; one in ten up to 4 minutes early (out of order), one in a hundred late past the lateness.
    let ts = start + Math.floor((i / TRANSACTIONS) * 6 * HOUR);
    if (random.next() < 0.1) ts -= random.int(4 * MIN);
    if (random.next() < 0.01) ts -= 10 * MIN + random.int(HOUR);
    const user = `u${random.int(60)}`;
    const transaction = {
      event_id: `t${i}`,
      user_id: user,
      merchant_id: `m${random.int(12)}`,
      amount: Math.round(random.next() * 50_000) / 100,
      currency: 'EUR',
      country: 'FR',
      channel: 'web',
      ts,
    };
    add(topics, 'transactions', user, transaction);
    // Published again on the partition of another key, with another amount.
    if (i % 97 === 0) add(again, 'transactions', `again-${i}`, { ...transaction, amount: transaction.amount + 1 });
    if (i % 2 === 0) {
      const prediction = {
        request_id: `t${i}`,
        model: { name: 'fraud_detector', version: '1' },
        variant: 'champion',
        features: Object.fromEntries(model.features.map((f, k) => [f, k === 0 ? transaction.amount : random.int(9)])),
        predicted_at: ts,
      };
      add(topics, 'predictions', `t${i}`, prediction);
      // A retried request logged on the partition of another key, predicted at the same instant, with other values.
      if (i % 50 === 0)
        add(again, 'predictions', `retry-${i}`, { ...prediction, features: { ...prediction.features, 'request:amount': -1 } });
    }
    // A label dated before its transaction, minutes to hours after it, or after the cut-off; one in 40 corrected
    // on the partition of another key, both dated after they were logged (so arriving at that same time).
    const corrected = i % 40 === 0;
    const draw = random.next();
    const dated = corrected
      ? now + MIN + random.int(30 * MIN)
      : draw < 0.05
        ? ts - random.int(HOUR)
        : draw < 0.15
          ? cutoff + random.int(HOUR)
          : ts + random.int(10 * HOUR);
    const verdict = random.next() < 0.1 ? 1 : 0;
    add(topics, 'labels', `t${i}`, { request_id: `t${i}`, label: verdict, ts: dated });
    if (corrected) add(again, 'labels', `t${i}-corrected`, { request_id: `t${i}`, label: 1 - verdict, ts: dated });
  }
  for (const records of Object.values(topics))
    for (let p = 0; p < 4; p++) records.splice(p * 1_000 + 7, 0, { key: `bad-${p}`, value: '{"cut short": ' });
  for (const [topic, records] of Object.entries(topics)) await eventLog.publish(topic, records);
  for (const [topic, records] of Object.entries(again)) await eventLog.publish(topic, records);
  return { eventLog, cutoff };
}

/** A topic as it was read before: whole, each partition's records after the partition before. */
async function readWhole(eventLog: MemoryEventLog, topic: string): Promise<LogInput> {
  return { name: topic, kind: 'topic', records: (await readTopicToEnd(eventLog, topic)).flat() };
}

describe('topics read as streams', () => {
  it('build the training sets that reading each partition after the other builds, in both modes', async () => {
    const { eventLog, cutoff } = await generatedLog();
    const common = { model, policy: { cutoff, unlabelled: 'negative' as const, maturityMs: 10 * MIN }, split: { validationFraction: 0.2 } };
    const fromLog = async (read: (topic: string) => Promise<LogInput>) =>
      trainingSetFromPredictionLog({
        ...common,
        predictions: await read('predictions'),
        labels: await read('labels'),
        variant: 'champion',
      });
    const example = fraud.fraudExample();
    const fromBackfill = async (read: (topic: string) => Promise<LogInput>) =>
      trainingSetFromBackfill({
        ...common,
        events: new Map([['transactions', await read('transactions')]]),
        rowsSource: 'transactions',
        labels: await read('labels'),
        sources: example.sources,
        groups: example.groups,
        catalog: example.catalog,
        requestFields: Object.keys(fraud.FraudRequestFieldsSchema.properties),
        allowedLatenessMs: 5 * MIN,
      });
    const streamed = (topic: string) => readTopic(eventLog, topic);
    const whole = (topic: string) => readWhole(eventLog, topic);

    // The stream does interleave the partitions.
    const partitions: number[] = [];
    for await (const record of (await streamed('labels')).records)
      if (partitions.at(-1) !== record.partition) partitions.push(record.partition);
    expect(partitions.length).toBeGreaterThan(4);

    const log = await fromLog(streamed);
    expect(log).toEqual(await fromLog(whole));
    const backfill = await fromBackfill(streamed);
    expect(backfill).toEqual(await fromBackfill(whole));

    // Not vacuous: what the order of partitions decides is in the log.
    expect(log.set.stats.served).toMatchObject({ duplicates: 100 });
    expect(log.set.stats.join.labels_superseded).toBeGreaterThan(50);
    expect(log.set.stats.join.labels_after_cutoff).toBeGreaterThan(100);
    expect(backfill.set.stats.events).toMatchObject({ duplicates: 52 });
    expect(backfill.set.rows.length).toBeGreaterThan(4_096);
    expect(backfill.set.stats.replay![0]!.rejected.late).toBeGreaterThan(10);
    expect(new Set(log.rejected.map((r) => r.where.split('@')[0]))).toEqual(
      new Set(['predictions/0', 'predictions/1', 'predictions/2', 'predictions/3', 'labels/0', 'labels/1', 'labels/2', 'labels/3']),
    );
  }, 60_000);
});
