/** Example transactions for the benchmarks: random card holders and merchants, given ids and event times. */
import type { LogRecord, OutgoingRecord, Random } from '../shared/src/index.js';

export function benchTransactions(
  random: Random,
  count: number,
  users: number,
  id: (i: number) => string,
  time: (i: number) => number,
): OutgoingRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const user = `u${random.int(users)}`;
    return {
      key: user,
      value: JSON.stringify({
        event_id: id(i),
        user_id: user,
        merchant_id: `m${random.int(2_000)}`,
        amount: Math.round(random.next() * 20_000) / 100,
        currency: 'USD',
        country: 'US',
        channel: 'web',
        ts: time(i),
      }),
    };
  });
}

/** Records as a consumer of partition 0 of `topic` would receive them, offsets from `firstOffset`. */
export function asLogRecords(topic: string, outgoing: OutgoingRecord[], timestamp: number, firstOffset = 0): LogRecord[] {
  return outgoing.map((r, i) => ({
    topic,
    partition: 0,
    offset: String(firstOffset + i),
    key: r.key ?? null,
    value: Buffer.from(r.value),
    timestamp,
    headers: {},
  }));
}
