/**
 * An event whose time is far ahead of its record's timestamp (valid by the schema, e.g. the
 * year 275760) is set aside as invalid, online and in the backfill: applied, it would move
 * its partition's watermark so far that every later event of the partition were late.
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, type LogRecord } from '@tributary/shared';
import { backfill } from '../src/backfill.js';
import { MAX_EVENT_TIME_AHEAD_MS, sourceDecoder } from '../src/decode.js';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const groups = example.groups.filter((g) => g.definition.source === source.name);
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const record = (i: number, ts: number, timestamp = NOW): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(i),
  key: 'u1',
  value: Buffer.from(
    JSON.stringify({ event_id: `e${i}`, user_id: 'u1', merchant_id: 'm1', amount: 5, currency: 'USD', country: 'US', channel: 'web', ts }),
  ),
  timestamp,
  headers: {},
});

describe('an event time far ahead of the record', () => {
  const decode = sourceDecoder(source);

  it('is invalid beyond the bound, and accepted within it or when the log has no timestamp', () => {
    const far = decode(record(0, 8.64e15));
    expect(far).toMatchObject({ ok: false, reason: 'invalid' });
    expect(!far.ok && far.detail).toMatch(/^ts: \+275760-09-13T00:00:00\.000Z is more than 60 minutes ahead of the record's timestamp/);
    expect(decode(record(1, NOW + MAX_EVENT_TIME_AHEAD_MS + 1))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(2, NOW + MAX_EVENT_TIME_AHEAD_MS)).ok).toBe(true);
    expect(decode(record(3, NOW - 60_000)).ok).toBe(true);
    expect(decode(record(4, 8.64e15, 0)).ok).toBe(true); // no timestamp on the log: nothing to compare with
  });

  it('is invalid in a file (no log timestamp) beyond the bound of the time the file was read', () => {
    const fromFile = sourceDecoder(source, { readAt: NOW });
    const far = fromFile(record(0, Date.UTC(2099, 0, 1), 0));
    expect(far).toMatchObject({ ok: false, reason: 'invalid' });
    expect(!far.ok && far.detail).toBe(
      'ts: 2099-01-01T00:00:00.000Z is more than 60 minutes ahead of the time the events were read 2026-11-29T12:00:00.000Z',
    );
    expect(fromFile(record(1, NOW + MAX_EVENT_TIME_AHEAD_MS + 1, 0))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(fromFile(record(2, NOW + MAX_EVENT_TIME_AHEAD_MS, 0)).ok).toBe(true);
    // A record with a log timestamp is judged against it, whenever it is read.
    expect(fromFile(record(3, NOW + 2 * MAX_EVENT_TIME_AHEAD_MS, NOW + 2 * MAX_EVENT_TIME_AHEAD_MS)).ok).toBe(true);

    const records = [record(0, NOW - 120_000, 0), record(1, Date.UTC(2099, 0, 1), 0), record(2, NOW - 60_000, 0)];
    const offline = backfill({
      groups,
      source,
      allowedLatenessMs: 5 * 60_000,
      partitions: [records],
      queries: [{ entity: 'user_id', id: 'u1', at: NOW }],
      readAt: NOW,
    });
    expect([offline.accepted, offline.rejected]).toEqual([2, { late: 0, malformed: 0, invalid: 1 }]);
  });

  it('does not move the watermark: the events after it are applied, online and in the backfill', async () => {
    const records = [record(0, NOW - 120_000), record(1, 8.64e15), record(2, NOW - 60_000), record(3, NOW - 30_000)];
    const processor = createFeatureProcessor({
      store: new MemoryOnlineStore(() => NOW),
      groups,
      source,
      allowedLatenessMs: 5 * 60_000,
      clock: () => NOW,
    });
    processor.open(source.topic, 0, -Infinity);
    const outcome = await processor.process({ topic: source.topic, partition: 0, records });
    expect(outcome.applied).toBe(3);
    expect(outcome.rejected.map((r) => [r.record.offset, r.reason])).toEqual([['1', 'invalid']]);

    const offline = backfill({
      groups,
      source,
      allowedLatenessMs: 5 * 60_000,
      partitions: [records],
      queries: [{ entity: 'user_id', id: 'u1', at: NOW }],
    });
    expect(offline.accepted).toBe(3);
    expect(offline.rejected).toEqual({ late: 0, malformed: 0, invalid: 1 });
    expect(offline.rows[0]!.features.user_transactions!.count_1h).toBe(3);
  });
});
