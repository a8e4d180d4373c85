/**
 * A source whose schema does not require its event-id field: a record without an event id is
 * invalid (dead-lettered with the reason), not given a shared id that makes every later such
 * event a duplicate.
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, type LogRecord, Type } from '@tributary/shared';
import { sourceDecoder } from '../src/decode.js';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const transactions = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const source = {
  ...transactions,
  schema: Type.Object({
    event_id: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()])),
    user_id: Type.String(),
    merchant_id: Type.String(),
    amount: Type.Number(),
    ts: Type.Integer(),
  }),
};
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const record = (offset: number, eventId?: unknown): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: 'u1',
  value: Buffer.from(JSON.stringify({ event_id: eventId, user_id: 'u1', merchant_id: 'm1', amount: 10, ts: NOW - 1_000 + offset })),
  timestamp: NOW,
  headers: {},
});

describe('a record without its event id', () => {
  it('is invalid, with the reason; an id that is a number is kept as text', () => {
    const decode = sourceDecoder(source);
    expect(decode(record(0), NOW)).toEqual({
      ok: false,
      reason: 'invalid',
      detail: 'event_id: no event id (a non-empty string or a number)',
    });
    expect(decode(record(1, null), NOW)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(2, ''), NOW)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(decode(record(3, 42), NOW)).toMatchObject({ ok: true, event: { id: '42' } });
  });

  it('is dead-lettered rather than applied, and records without ids are not duplicates of each other', async () => {
    const processor = createFeatureProcessor({
      store: new MemoryOnlineStore(() => NOW),
      groups: [user],
      source,
      allowedLatenessMs: 300_000,
      clock: () => NOW,
    });
    processor.open(source.topic, 0, -Infinity);
    const outcome = await processor.process({ topic: source.topic, partition: 0, records: [record(0), record(1), record(2, 'e2')] });
    expect(outcome).toMatchObject({ applied: 1, duplicates: 0 });
    expect(outcome.rejected.map((r) => [r.record.offset, r.reason])).toEqual([
      ['0', 'invalid'],
      ['1', 'invalid'],
    ]);
  });
});
