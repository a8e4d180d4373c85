/**
 * A backlog for the label join: the simulator's transactions over a stretch of time in the past, each
 * labelled some seconds to minutes after it (exponential delays, 30 s on average, as SIMULATOR_LABEL_DELAY),
 * the labels in the order of their times as the simulator publishes them; and each merchant's fraud rate
 * over all of them, as the `merchant_labels` group should count it.
 */
import { createTransactionGenerator } from '@tributary/simulator';
import { createRandom, fraud, readFeatureValues, type EventLog, type OnlineStore, type OutgoingRecord } from '@tributary/shared';

export interface LabelBacklog {
  transactions: OutgoingRecord[];
  labels: OutgoingRecord[];
  /** Per merchant: its labelled transactions and the share of them labelled fraudulent. */
  fraudRates: Map<string, { count: number; mean: number }>;
}

/** `count` transactions at `perSecond`, the last 20 minutes before `now`. */
export function labelBacklog(count: number, perSecond: number, now = Date.now()): LabelBacklog {
  const generator = createTransactionGenerator({ seed: 7, users: 2_000, fraudRate: 0.03 });
  const delays = createRandom(8);
  const start = now - Math.ceil((count / perSecond) * 1_000) - 20 * 60_000;
  const transactions: OutgoingRecord[] = [];
  const labels: { ts: number; record: OutgoingRecord }[] = [];
  const rates = new Map<string, { count: number; fraud: number }>();
  for (let i = 0; i < count; i++) {
    const { transaction, fraud: isFraud } = generator.next(start + Math.round((i * 1_000) / perSecond));
    transactions.push({ key: transaction.user_id, value: JSON.stringify(transaction) });
    const ts = transaction.ts + Math.round(-Math.log(1 - delays.next()) * 30_000);
    const label = { request_id: transaction.event_id, label: isFraud ? 1 : 0, ts };
    labels.push({ ts, record: { key: label.request_id, value: JSON.stringify(label) } });
    const rate = rates.get(transaction.merchant_id) ?? { count: 0, fraud: 0 };
    rate.count++;
    rate.fraud += label.label;
    rates.set(transaction.merchant_id, rate);
  }
  labels.sort((a, b) => a.ts - b.ts);
  return {
    transactions,
    labels: labels.map((l) => l.record),
    fraudRates: new Map([...rates].map(([merchant, rate]) => [merchant, { count: rate.count, mean: rate.fraud / rate.count }])),
  };
}

/** Publishes the backlog in sends of at most 1,000 records (the simulator's), all transactions first. */
export async function publishBacklog(eventLog: EventLog, topics: { transactions: string; labels: string }, backlog: LabelBacklog) {
  for (let i = 0; i < backlog.transactions.length; i += 1_000)
    await eventLog.publish(topics.transactions, backlog.transactions.slice(i, i + 1_000));
  for (let i = 0; i < backlog.labels.length; i += 1_000) await eventLog.publish(topics.labels, backlog.labels.slice(i, i + 1_000));
}

/** The merchants whose fraud rate in the store is not the backlog's, with both. */
export async function wrongFraudRates(store: OnlineStore, backlog: LabelBacklog, at = Date.now()) {
  const group = fraud.fraudExample().groups.find((g) => g.definition.name === 'merchant_labels')!;
  const merchants = [...backlog.fraudRates.keys()];
  const stored = await store.read(merchants.map((id) => ({ group: group.id, entity: 'merchant_id', id })));
  return merchants.flatMap((merchant, i) => {
    const { values } = readFeatureValues(group, stored[i] ?? null, at);
    const expected = backlog.fraudRates.get(merchant)!;
    const found = { count: values.count_7d, mean: values.label_mean_7d };
    return found.count === expected.count && Math.abs(Number(found.mean) - expected.mean) < 1e-9 ? [] : [{ merchant, expected, found }];
  });
}
