/**
 * Events ahead of the time their record was logged: a device clock ahead moves its
 * partition's watermark only as far as the log vouches for (the record's timestamp), so it
 * makes no other event late; an event ahead by more than MAX_EVENT_TIME_AHEAD_MS is invalid;
 * a record without a usable timestamp (none, or one later than the time it is read) is
 * judged against the time it is read. The same in the pipeline and in the backfill.
 */
import { describe, expect, it } from 'vitest';
import { compileFeatureGroup, fraud, MemoryOnlineStore, readFeatureValues, type LogRecord } from '@tributary/shared';
import { backfill } from '../src/backfill.js';
import { MAX_EVENT_TIME_AHEAD_MS } from '@tributary/shared';
import { sourceDecoder } from '../src/decode.js';
import { createFeatureProcessor, decodeCheckpoint } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const groups = example.groups.filter((g) => g.definition.source === source.name);
const user = groups.find((g) => g.entity === 'user_id')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const LATENESS = 5 * 60_000;
const MINUTE = 60_000;
const YEAR_2099 = Date.UTC(2099, 0, 1);

const record = (i: number, ts: number, timestamp = NOW, userId = 'u1'): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(i),
  key: userId,
  value: Buffer.from(
    JSON.stringify({
      event_id: `e${i}`,
      user_id: userId,
      merchant_id: 'm1',
      amount: 5,
      currency: 'USD',
      country: 'US',
      channel: 'web',
      ts,
    }),
  ),
  timestamp,
  headers: {},
});

/** The pipeline reading `records` at NOW (its clock), flushed: what it did, and the watermark it commits. */
async function online(records: LogRecord[], checkpoint = -Infinity) {
  const store = new MemoryOnlineStore(() => NOW);
  const processor = createFeatureProcessor({ store, groups, source, allowedLatenessMs: LATENESS, clock: () => NOW });
  processor.open(source.topic, 0, checkpoint);
  const outcome = await processor.process({ topic: source.topic, partition: 0, records });
  const { commits } = await processor.flush();
  const count = async (id: string, at: number) => {
    const [fields] = await store.read([{ group: user.id, entity: 'user_id', id }]);
    return readFeatureValues(user, fields ?? null, at).values.count_10m;
  };
  return { outcome, watermark: decodeCheckpoint(commits[0]?.metadata ?? null), count };
}

const offline = (records: LogRecord[], at = NOW, id = 'u1') =>
  backfill({ groups, source, allowedLatenessMs: LATENESS, partitions: [records], queries: [{ entity: 'user_id', id, at }], readAt: NOW });

describe('an event time ahead of its record', () => {
  const decode = sourceDecoder(source);

  it('is invalid beyond the bound of the time its record was logged, and accepted within it', () => {
    const far = decode(record(0, 8.64e15), NOW);
    expect(far).toMatchObject({ ok: false, reason: 'invalid' });
    expect(!far.ok && far.detail).toMatch(/^ts: \+275760-09-13T00:00:00\.000Z is more than 60 minutes ahead of its record's timestamp/);
    expect(decode(record(1, NOW + MAX_EVENT_TIME_AHEAD_MS + 1), NOW)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(2, NOW + MAX_EVENT_TIME_AHEAD_MS), NOW)).toMatchObject({ ok: true, event: { loggedAt: NOW } });
    expect(decode(record(3, NOW - 60_000), NOW)).toMatchObject({ ok: true, event: { loggedAt: NOW } });
    // Read back later (a replay, a backfill), a record is judged against its timestamp still.
    expect(decode(record(4, NOW + MAX_EVENT_TIME_AHEAD_MS + 1), NOW + 1_000_000)).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it('without a usable timestamp (none, or one later than the record is read), is judged against the time it is read', () => {
    const far = decode(record(0, YEAR_2099, 0), NOW);
    expect(far).toEqual({
      ok: false,
      reason: 'invalid',
      detail: 'ts: 2099-01-01T00:00:00.000Z is more than 60 minutes ahead of the time its record was read 2026-11-29T12:00:00.000Z',
    });
    // A producer stamping its records with their event time (CreateTime) vouches for nothing ahead of the clock.
    expect(decode(record(1, YEAR_2099, YEAR_2099), NOW)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(2, NOW + MAX_EVENT_TIME_AHEAD_MS + 1, 0), NOW)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(3, NOW + 60_000, NOW + 60_000), NOW)).toMatchObject({ ok: true, event: { loggedAt: NOW } });
    expect(decode(record(4, NOW - 60_000, 0), NOW)).toMatchObject({ ok: true, event: { loggedAt: NOW } });
  });

  it('moves the watermark only to the time its record was logged: the on-time events after it are applied', async () => {
    // u9's device clock is 59 minutes ahead (or local time labelled UTC); the others are on time.
    const records = [
      record(0, NOW - 6 * MINUTE + 59 * MINUTE, NOW - 6 * MINUTE, 'u9'),
      ...Array.from({ length: 5 }, (_, i) => record(i + 1, NOW - (5 - i) * MINUTE, NOW - (5 - i) * MINUTE + 500, `u${i}`)),
    ];
    const { outcome, watermark } = await online(records);
    expect(outcome.rejected).toEqual([]);
    expect(outcome.applied).toBe(6);
    expect(watermark).toBe(NOW - MINUTE);
    const replay = offline(records);
    expect([replay.accepted, replay.rejected]).toEqual([6, { late: 0, malformed: 0, invalid: 0 }]);
  });

  it('years ahead, stamped 0 or with its event time, is invalid online and in the backfill, and never reaches the watermark', async () => {
    for (const stamp of [0, YEAR_2099]) {
      const records = [record(0, YEAR_2099, stamp), record(1, NOW - 2_000, NOW - 1_000), record(2, NOW - 1_000, NOW - 500)];
      const { outcome, watermark } = await online(records);
      expect(
        outcome.rejected.map((r) => [r.record.offset, r.reason]),
        `stamped ${stamp}`,
      ).toEqual([['0', 'invalid']]);
      expect(outcome.applied).toBe(2);
      expect(watermark).toBe(NOW - 1_000);
      const replay = offline(records);
      expect([replay.accepted, replay.rejected], `stamped ${stamp}`).toEqual([2, { late: 0, malformed: 0, invalid: 1 }]);
      expect(replay.rows[0]!.features.user_transactions!.count_10m).toBe(2);
    }
  });

  it('a watermark ahead of the clock committed by an earlier version is taken as the clock', async () => {
    const { outcome, watermark } = await online([record(0, NOW - 2_000, NOW - 1_000)], YEAR_2099);
    expect([outcome.applied, outcome.rejected]).toEqual([1, []]);
    expect(watermark).toBe(NOW);
  });

  it('is counted by a read in its tile from the time it was logged, online and in the backfill alike', async () => {
    // Logged at NOW (a minute-tile boundary), dated 30 s later: the read at NOW merges the whole tile [NOW, NOW + 1m).
    const records = [record(0, NOW - 10_000, NOW - 5_000), record(1, NOW + 30_000, NOW)];
    const { count } = await online(records);
    expect(await count('u1', NOW)).toBe(2);
    expect(await count('u1', NOW - 1)).toBe(1);
    expect(offline(records, NOW).rows[0]!.features.user_transactions!.count_10m).toBe(2);
    expect(offline(records, NOW - 1).rows[0]!.features.user_transactions!.count_10m).toBe(1);
  });

  it("keeps its entity's key as long as a window reads it, past the ttl from the write (the least ttl a group may have)", async () => {
    // 1h window, 5m tiles: the least ttl is 65m. Dated 59 min after its record, written at NOW.
    const short = compileFeatureGroup(
      {
        name: 'short',
        version: 1,
        source: 'transactions',
        entity: 'user_id',
        ttl: '65m',
        aggregations: [{ column: '*', op: 'count', windows: ['1h'] }],
      },
      [source],
    );
    let clock = NOW;
    const store = new MemoryOnlineStore(() => clock);
    const processor = createFeatureProcessor({ store, groups: [short], source, allowedLatenessMs: LATENESS, clock: () => clock });
    processor.open(source.topic, 0, -Infinity);
    const outcome = await processor.process({ topic: source.topic, partition: 0, records: [record(0, NOW + 59 * MINUTE, NOW)] });
    expect(outcome.applied).toBe(1);
    await processor.flush();
    const count = async () => {
      const [fields] = await store.read([{ group: short.id, entity: 'user_id', id: 'u1' }]);
      return readFeatureValues(short, fields ?? null, clock).values.count_1h;
    };
    // 66 min after the write, the window still reads the event's tile (it did expire then, 65 min after the write).
    clock = NOW + 66 * MINUTE;
    expect(await count()).toBe(1);
    // Gone once no window reads it: the ttl from the event's time.
    clock = NOW + 59 * MINUTE + 65 * MINUTE + 1;
    expect(await count()).toBeNull();
  });
});
