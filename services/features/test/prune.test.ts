/**
 * The pipeline prunes each entity's tiles at the partition's event time when it is behind
 * the clock: a replay of events hours old keeps the tiles that reads at the times the stream
 * has reached need (the 10-minute window's one-minute tiles too), and no more.
 */
import { describe, expect, it } from 'vitest';
import { decodePartitionState, fraud, MemoryOnlineStore, readFeatureValues, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const START = NOW - 3 * 3_600_000;

const record = (i: number, ts: number): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(i),
  key: 'u1',
  value: Buffer.from(
    JSON.stringify({ event_id: `e${i}`, user_id: 'u1', merchant_id: 'm1', amount: 1, currency: 'USD', country: 'US', channel: 'web', ts }),
  ),
  timestamp: ts,
  headers: {},
});

/**
 * An event a minute for two hours, three hours ago, applied in batches of ten minutes, each
 * flushed after it, the clock moving on by `clockStepMs` before each batch; the stored fields.
 */
async function replay(clockStepMs: number) {
  let clock = NOW;
  const store = new MemoryOnlineStore(() => clock);
  const processor = createFeatureProcessor({ store, groups: [user], source, allowedLatenessMs: 5 * 60_000, clock: () => clock });
  processor.open(source.topic, 0, -Infinity);
  for (let batch = 0; batch < 12; batch++) {
    clock += clockStepMs;
    const records = Array.from({ length: 10 }, (_, k) => record(batch * 10 + k, START + (batch * 10 + k) * 60_000));
    await processor.process({ topic: source.topic, partition: 0, records });
    await processor.flush();
  }
  const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
  return fields;
}

describe('pruning during a replay of older events', () => {
  it('keeps what reads at the stream’s time need, and only a window’s worth of small tiles', async () => {
    // Flushes a minute apart.
    const fields = await replay(61_000);
    const last = START + 119 * 60_000;
    const values = readFeatureValues(user, fields ?? null, last).values;
    expect(values.count_10m).toBe(11); // one a minute, the window plus its partial tile
    expect(values.count_1h).toBeGreaterThanOrEqual(60);
    const oneMinuteTiles = Object.entries(fields!)
      .filter(([field]) => /^s\d+$/.test(field))
      .flatMap(([, value]) => [...decodePartitionState(value).tiles.keys()])
      .filter((key) => key.startsWith('60000:')).length;
    expect(oneMinuteTiles).toBeLessThanOrEqual(12);
  });

  it('prunes as the stream’s time moves on, however fast a replay goes by the clock', async () => {
    // The same two hours of events, all within one instant of the clock.
    const fields = await replay(0);
    const tiles = Object.entries(fields!)
      .filter(([field]) => /^s\d+$/.test(field))
      .flatMap(([, value]) => [...decodePartitionState(value).tiles.keys()]);
    expect(tiles.filter((key) => key.startsWith('60000:')).length).toBeLessThanOrEqual(12);
    expect(tiles.filter((key) => key.startsWith('300000:')).length).toBeLessThanOrEqual(14);
    expect(readFeatureValues(user, fields ?? null, START + 119 * 60_000).values.count_10m).toBe(11);
  });
});
