import { describe, it, expect } from 'vitest';
import { Type } from '@tributary/shared';
import { LabelSchema } from '../../src/records/labels.js';
import { TransactionSchema, type Transaction } from '../../src/example/fraud/transactions.js';
import type { LogRecord } from '../../src/event-log/types.js';
import {
  DEAD_LETTER_DETAIL_CHARS,
  DEAD_LETTER_HEADER_CHARS,
  DEAD_LETTER_KEY_CHARS,
  DEAD_LETTER_SEND_BYTES,
  deadLetter,
  deadLetterSends,
  recordBytes,
  type DeadLetter,
} from '../../src/records/dead-letter.js';
import { parseEventTime, recordValidator } from '../../src/records/validation.js';

const validator = recordValidator<Transaction>(TransactionSchema);

const VALID: Transaction = {
  event_id: 'evt-1',
  user_id: 'u-42',
  merchant_id: 'm:7',
  amount: 12.5,
  currency: 'EUR',
  country: 'FR',
  channel: 'web',
  ts: 1_717_999_200_000,
};

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const without = (field: keyof Transaction): Record<string, unknown> => {
  const copy: Record<string, unknown> = { ...VALID };
  delete copy[field];
  return copy;
};

describe('recordValidator(TransactionSchema).decode', () => {
  it('accepts a valid transaction, with ts in epoch ms or ISO-8601 with an offset', () => {
    expect(validator.decode(json(VALID))).toEqual({ ok: true, value: VALID });
    for (const ts of ['2024-06-10T06:00:00Z', '2024-06-10T08:00:00.123+02:00']) {
      expect(validator.decode(json({ ...VALID, ts })), ts).toEqual({ ok: true, value: { ...VALID, ts } });
    }
    expect(validator.decode(json({ ...VALID, amount: 0 })).ok).toBe(true);
    expect(validator.decode(json({ ...VALID, amount: 1e9 })).ok).toBe(true);
  });

  it('rejects a null or empty value as malformed', () => {
    expect(validator.decode(null)).toEqual({ ok: false, reason: 'malformed', detail: 'empty record value' });
    expect(validator.decode(Buffer.alloc(0))).toEqual({ ok: false, reason: 'malformed', detail: 'empty record value' });
  });

  it('rejects bytes that are not UTF-8 as malformed', () => {
    const text = JSON.stringify(VALID);
    for (const bytes of [
      Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
      Buffer.concat([Buffer.from(text.slice(0, 10)), Buffer.from([0xc3]), Buffer.from(text.slice(10))]), // truncated sequence
      Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]), // encoded surrogate
    ]) {
      expect(validator.decode(bytes)).toEqual({ ok: false, reason: 'malformed', detail: 'record value is not valid UTF-8' });
    }
  });

  it('rejects text that is not JSON as malformed, with the parser message', () => {
    for (const text of ['{"event_id": "e1",', 'not json', "{'event_id': 'e1'}", '{"amount": NaN}']) {
      const decoded = validator.decode(Buffer.from(text));
      expect(decoded.ok, text).toBe(false);
      if (decoded.ok) continue;
      expect(decoded.reason).toBe('malformed');
      expect(decoded.detail).toMatch(/^invalid JSON: \S/);
    }
  });

  it('rejects JSON that is not an object as invalid at the root', () => {
    for (const value of [[], 'text', 42, null, true]) {
      expect(validator.decode(json(value)), JSON.stringify(value)).toEqual({
        ok: false,
        reason: 'invalid',
        detail: '(root): must be object',
      });
    }
  });

  const invalid: [string, Buffer, string | RegExp][] = [
    ['amount as a string', json({ ...VALID, amount: '12.5' }), 'amount: must be number'],
    ['negative amount', json({ ...VALID, amount: -0.01 }), 'amount: must be >= 0'],
    ['amount above 1e9', json({ ...VALID, amount: 1e9 + 1 }), 'amount: must be <= 1000000000'],
    // JSON.parse turns 1e400 into Infinity: not a finite number, rejected naming the field
    ['amount 1e400 (Infinity)', Buffer.from(JSON.stringify(VALID).replace('12.5', '1e400')), /^amount: /],
    ['amount -1e400', Buffer.from(JSON.stringify(VALID).replace('12.5', '-1e400')), /^amount: /],
    ['ts 1e400', Buffer.from(JSON.stringify(VALID).replace(String(VALID.ts), '1e400')), /^ts: /],
    ['fractional ts', json({ ...VALID, ts: 1.5 }), /^ts: /],
    ['negative ts', json({ ...VALID, ts: -1 }), /^ts: /],
    ['ts not a date-time', json({ ...VALID, ts: 'yesterday' }), /^ts: /],
    ['ts without an offset', json({ ...VALID, ts: '2024-06-10T06:00:00' }), /^ts: /],
    ['ts as a bare number string', json({ ...VALID, ts: '1717999200000' }), /^ts: /],
    ['missing amount', json(without('amount')), 'missing required field(s) "amount"'],
    ['missing event_id', json(without('event_id')), 'missing required field(s) "event_id"'],
    ['unknown field', json({ ...VALID, amount_usd: 13 }), 'unknown field(s) "amount_usd"'],
    ['__proto__ key', Buffer.from(JSON.stringify(VALID).replace('{', '{"__proto__":{"amount":-1},')), 'unknown field(s) "__proto__"'],
    ['constructor key', json({ ...VALID, constructor: 'x' }), 'unknown field(s) "constructor"'],
    ['lower-case country', json({ ...VALID, country: 'fr' }), 'country: must match pattern "^[A-Z]{2}$"'],
    ['unknown channel', json({ ...VALID, channel: 'fax' }), /^channel: /],
    ['empty user_id', json({ ...VALID, user_id: '' }), /^user_id: /],
    ['user_id with a space', json({ ...VALID, user_id: 'u 1' }), /^user_id: /],
    ['user_id of 129 characters', json({ ...VALID, user_id: 'u'.repeat(129) }), /^user_id: /],
    ['currency of 2 letters', json({ ...VALID, currency: 'EU' }), /^currency: /],
    ['merchant_id null', json({ ...VALID, merchant_id: null }), /^merchant_id: /],
  ];
  for (const [what, bytes, detail] of invalid) {
    it(`rejects ${what} as invalid, naming the field`, () => {
      const decoded = validator.decode(bytes);
      expect(decoded.ok).toBe(false);
      if (decoded.ok) return;
      expect(decoded.reason).toBe('invalid');
      if (typeof detail === 'string') expect(decoded.detail).toBe(detail);
      else expect(decoded.detail).toMatch(detail);
    });
  }

  const EVENT_TIME = 'ts: must be an epoch-milliseconds integer (0 to 8.64e15) or an RFC 3339 date-time';
  for (const ts of ['2026-13-45T99:00:00Z', 'yesterday', '2026-02-30T00:00:00Z', '2024-06-10T06:00:00', -1, 1.5, 8.64e15 + 1, null, true]) {
    it(`names both accepted forms of an event time for ts ${JSON.stringify(ts)}, not only the first`, () => {
      expect(validator.validate({ ...VALID, ts })).toEqual({ ok: false, reason: 'invalid', detail: EVENT_TIME });
    });
  }

  it('names every value a union of constants takes', () => {
    expect(validator.validate({ ...VALID, channel: 'fax' })).toEqual({
      ok: false,
      reason: 'invalid',
      detail: 'channel: must be "web", "app" or "pos"',
    });
    expect(recordValidator(LabelSchema).validate({ request_id: 'r', label: 2, ts: 1 })).toEqual({
      ok: false,
      reason: 'invalid',
      detail: 'label: must be 0 or 1',
    });
  });

  it("describes each branch of a union by its type and bounds, a union's in it too, each once", () => {
    const schema = Type.Object({
      age: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]),
      tag: Type.Union([
        Type.Union([Type.Literal('a'), Type.Literal('b')]),
        Type.String({ pattern: '^x-', maxLength: 8 }),
        Type.Boolean(),
        Type.Integer({ exclusiveMinimum: 0 }),
      ]),
      shape: Type.Union([Type.Object({ a: Type.Number() }), Type.Object({ b: Type.String() })]),
    });
    const valid = { age: null, tag: 'a', shape: { a: 1 } };
    const detail = (value: Record<string, unknown>) => {
      const decoded = recordValidator(schema).validate({ ...valid, ...value });
      return decoded.ok ? 'accepted' : decoded.detail;
    };
    expect(detail({})).toBe('accepted');
    expect(detail({ age: 2 })).toBe('age: must be a number >= 0 and <= 1 or null');
    expect(detail({ tag: 'c' })).toBe('tag: must be "a", "b", a string matching ^x- of at most 8 characters, a boolean or an integer > 0');
    expect(detail({ shape: 3 })).toBe('shape: must be an object');
    // A value of a branch's shape with a wrong part: that part is named.
    expect(detail({ shape: { a: 'x' } })).toBe('shape.a: must be number');
  });

  it('a __proto__ key does not reach the prototype of anything', () => {
    const decoded = validator.decode(Buffer.from(JSON.stringify(VALID).replace('{', '{"__proto__":{"polluted":true},')));
    expect(decoded.ok).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('validate() checks an already parsed value with the same messages', () => {
    expect(validator.validate(VALID)).toEqual({ ok: true, value: VALID });
    expect(validator.validate({ ...VALID, amount: -1 })).toEqual({ ok: false, reason: 'invalid', detail: 'amount: must be >= 0' });
    expect(validator.validate(undefined)).toMatchObject({ ok: false, reason: 'invalid' });
  });
});

describe('parseEventTime', () => {
  it('takes epoch milliseconds as they are', () => {
    expect(parseEventTime(0)).toBe(0);
    expect(parseEventTime(VALID.ts)).toBe(VALID.ts);
    expect(parseEventTime(8.64e15)).toBe(8.64e15);
  });

  it('parses ISO-8601 strings with their offset', () => {
    expect(parseEventTime('2024-06-10T06:00:00Z')).toBe(Date.UTC(2024, 5, 10, 6));
    expect(parseEventTime('2024-06-10T08:00:00+02:00')).toBe(Date.UTC(2024, 5, 10, 6));
    expect(parseEventTime('2024-06-10T06:00:00.250Z')).toBe(Date.UTC(2024, 5, 10, 6, 0, 0, 250));
    expect(parseEventTime('1970-01-01T00:00:00Z')).toBe(0);
    expect(parseEventTime('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseEventTime('2026-12-31T23:59:59Z')).toBe(Date.UTC(2026, 11, 31, 23, 59, 59));
  });

  it('returns null for times that are not valid event times', () => {
    for (const value of [
      -1,
      1.5,
      NaN,
      Infinity,
      2 ** 53,
      Number.MAX_SAFE_INTEGER,
      8.64e15 + 1, // after the latest time a Date holds: toISOString() would throw
      'yesterday',
      '',
      '2024-13-01T00:00:00Z',
      // days a month does not have: Date.parse takes them for days of the next month
      '2026-02-31T00:00:00Z',
      '2026-02-29T00:00:00Z',
      '2026-04-31T12:00:00+02:00',
      '2026-01-00T00:00:00Z',
      '1969-12-31T23:59:59Z',
      null,
      undefined,
      {},
      [0],
      true,
    ]) {
      expect(parseEventTime(value), String(value)).toBeNull();
    }
  });

  it('rejects strings that are not ISO-8601 (no Date.parse fallbacks)', () => {
    // Date.parse falls back to implementation-specific formats, read in the local zone: in
    // V8 '1' is 2001-01-01 and '0' is 2000-01-01. An event time must not be guessed from them.
    for (const value of ['1', '0', '12', 'June 10, 2024', '2024/06/10 06:00', '10 Jun 2024']) {
      expect(parseEventTime(value), value).toBeNull();
    }
  });

  it('does not depend on the time zone of the machine', () => {
    // '2024-06-10T06:00:00' has no offset: Date.parse reads it in the local zone, so the
    // same event would land in different tiles on machines in different zones.
    const saved = process.env.TZ;
    const results = new Set<number | null>();
    try {
      for (const zone of ['UTC', 'America/New_York', 'Asia/Tokyo']) {
        process.env.TZ = zone;
        results.add(parseEventTime('2024-06-10T06:00:00'));
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
    expect([...results]).toHaveLength(1);
  });
});

describe('deadLetter', () => {
  const record = (value: Buffer | null, key: string | null = 'u-42'): LogRecord => ({
    topic: 'transactions',
    partition: 3,
    offset: '9007199254740993', // beyond 2^53: kept as a string, exactly
    key,
    value,
    timestamp: Date.UTC(2024, 5, 10),
    headers: { trace: 'abc' },
  });
  const letterOf = (out: { value: string | Buffer }): DeadLetter => JSON.parse(out.value.toString()) as DeadLetter;

  it('keeps a UTF-8 value as text, with the source coordinates, reason and consumer', () => {
    const text = '{"amount": "12", "note": "café ☕"}';
    const before = Date.now();
    const out = deadLetter(record(Buffer.from(text)), 'invalid', 'amount: must be number', 'features');
    expect(out.key).toBe('transactions:3:9007199254740993');
    expect(out.headers).toEqual({ reason: 'invalid' });
    const letter = letterOf(out);
    expect(letter).toMatchObject({
      reason: 'invalid',
      detail: 'amount: must be number',
      source: { topic: 'transactions', partition: 3, offset: '9007199254740993', key: 'u-42', headers: { trace: 'abc' } },
      value: text,
      encoding: 'utf8',
      consumer: 'features',
    });
    const at = Date.parse(letter.dead_lettered_at);
    expect(at).toBeGreaterThanOrEqual(before - 1);
    expect(at).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('keeps a value that is not UTF-8 as base64 of the exact bytes', () => {
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x80]);
    const letter = letterOf(deadLetter(record(bytes, null), 'malformed', 'record value is not valid UTF-8', 'features'));
    expect(letter.encoding).toBe('base64');
    expect(Buffer.from(letter.value!, 'base64').equals(bytes)).toBe(true);
    expect(letter.source.key).toBeNull();
  });

  it('keeps a key that is not UTF-8 as base64 of the exact bytes, and says so; a UTF-8 key stays text', () => {
    const keyBytes = Buffer.from([0x75, 0xff, 0x00, 0xc3, 0x28]);
    const withBytes: LogRecord = { ...record(Buffer.from('{')), key: keyBytes.toString(), keyBytes };
    const letter = letterOf(deadLetter(withBytes, 'malformed', 'x', 'c'));
    expect(letter.source.key_encoding).toBe('base64');
    expect(Buffer.from(letter.source.key!, 'base64').equals(keyBytes)).toBe(true);
    expect(letterOf(deadLetter(record(Buffer.from('{')), 'malformed', 'x', 'c')).source).not.toHaveProperty('key_encoding');
    // Too long a key of bytes: the beginning of its base64, whole quadruplets, that still decodes to its first bytes.
    const long = Buffer.alloc(200_000, 0xfe);
    const cut = letterOf(deadLetter({ ...record(Buffer.from('{')), key: long.toString(), keyBytes: long }, 'malformed', 'x', 'c'));
    expect(cut.source.key).toHaveLength(DEAD_LETTER_KEY_CHARS);
    expect(Buffer.from(cut.source.key!, 'base64').equals(long.subarray(0, (DEAD_LETTER_KEY_CHARS / 4) * 3))).toBe(true);
    expect(cut.truncated).toEqual({ original_key_bytes: 200_000 });
  });

  it("keeps the record's headers: as text, in base64 when text would not hold them exactly, none beyond the bound", () => {
    const plain = letterOf(
      deadLetter({ ...record(Buffer.from('{')), headers: { traceparent: '00-abc-def-01', tenant: 'café' } }, 'malformed', 'x', 'c'),
    );
    expect(plain.source.headers).toEqual({ traceparent: '00-abc-def-01', tenant: 'café' });
    expect(plain.source).not.toHaveProperty('header_encoding');
    expect(letterOf(deadLetter({ ...record(Buffer.from('{')), headers: {} }, 'malformed', 'x', 'c')).source).not.toHaveProperty('headers');
    // A value that is not UTF-8, and a name given twice: every value of every header, as bytes.
    const binary = Buffer.from([0xff, 0x00, 0xc3]);
    const headerBytes = { id: [binary], tag: [Buffer.from('a'), Buffer.from('b')] };
    const exact = letterOf(
      deadLetter({ ...record(Buffer.from('{')), headers: { id: binary.toString(), tag: 'a' }, headerBytes }, 'malformed', 'x', 'c'),
    );
    expect(exact.source.header_encoding).toBe('base64');
    const kept = exact.source.headers as Record<string, string[]>;
    expect(Object.keys(kept)).toEqual(['id', 'tag']);
    expect(kept.id!.map((v) => Buffer.from(v, 'base64'))).toEqual([binary]);
    expect(kept.tag!.map((v) => Buffer.from(v, 'base64').toString())).toEqual(['a', 'b']);
    // A header named `__proto__` is a header like any other.
    const proto = Object.defineProperty({}, '__proto__', { value: [Buffer.from('p')], enumerable: true }) as Record<string, Buffer[]>;
    const withProto = letterOf(
      deadLetter({ ...record(Buffer.from('{')), headerBytes: { ...proto, tag: [binary] } }, 'malformed', 'x', 'c'),
    );
    expect(Object.entries(withProto.source.headers!)).toEqual([
      ['__proto__', [Buffer.from('p').toString('base64')]],
      ['tag', [binary.toString('base64')]],
    ]);
    // Headers as large as a value: left out, with their size and a note; the value stays whole.
    const huge = { blob: 'h'.repeat(DEAD_LETTER_HEADER_CHARS) };
    const out = deadLetter({ ...record(Buffer.from('{')), headers: huge }, 'malformed', 'x', 'c');
    const left = letterOf(out);
    expect(left.source).not.toHaveProperty('headers');
    expect(left.truncated).toEqual({ original_header_bytes: 4 + DEAD_LETTER_HEADER_CHARS });
    expect(left.detail).toBe(
      `x (the headers, ${4 + DEAD_LETTER_HEADER_CHARS} bytes, are left out to fit the dead-letter topic; the whole is at offset 9007199254740993 of transactions partition 3)`,
    );
    expect(left.value).toBe('{');
    expect(recordBytes(out)).toBeLessThan(DEAD_LETTER_HEADER_CHARS);
  });

  it('a null value stays null; an empty one is empty text', () => {
    expect(letterOf(deadLetter(record(null), 'malformed', 'empty record value', 'c'))).toMatchObject({ value: null, encoding: 'utf8' });
    expect(letterOf(deadLetter(record(Buffer.alloc(0)), 'malformed', 'empty record value', 'c'))).toMatchObject({
      value: '',
      encoding: 'utf8',
    });
  });

  it('the kept value gives back the original bytes, whatever they are', () => {
    const values = [
      Buffer.from('{"a":1}'),
      Buffer.from([0xc3, 0x28]),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]), // UTF-8 byte order mark
    ];
    for (const bytes of values) {
      const letter = letterOf(deadLetter(record(bytes), 'malformed', 'x', 'c'));
      expect(Buffer.from(letter.value!, letter.encoding).toString('hex'), bytes.toString('hex')).toBe(bytes.toString('hex'));
    }
  });

  it('of a record too large for a send keeps the beginning of its text that fits, and says so', () => {
    // Text that JSON escapes (quotes) and characters of several bytes, one of two UTF-16 units: ~1.2 MB as a dead letter.
    const text = '"é😀'.repeat(150_000);
    const out = deadLetter(record(Buffer.from(text)), 'invalid', 'amount: must be number', 'features');
    expect(recordBytes(out)).toBeLessThanOrEqual(DEAD_LETTER_SEND_BYTES);
    // Not much less either: only the value is cut.
    expect(recordBytes(out)).toBeGreaterThan(DEAD_LETTER_SEND_BYTES - 16);
    const letter = letterOf(out);
    expect(letter.truncated).toEqual({ original_bytes: Buffer.byteLength(text) });
    expect(letter.detail).toBe(
      `amount: must be number (the value, ${Buffer.byteLength(text)} bytes, is cut to its beginning to fit the dead-letter topic; ` +
        'the whole is at offset 9007199254740993 of transactions partition 3)',
    );
    expect(letter.value!.length).toBeGreaterThan(0);
    expect(text.startsWith(letter.value!)).toBe(true);
    expect(letter.value).not.toMatch(/[\uD800-\uDBFF]$/);
  });

  it('of a record with a huge key and a huge value fits a send, keeps the beginning of both, and says where the whole is', () => {
    const key = 'k😀'.repeat(200_000 / 5); // 200,000 bytes
    const text = 'v'.repeat(1_200_000);
    const out = deadLetter(record(Buffer.from(text), key), 'invalid', 'amount: must be number', 'features');
    expect(recordBytes(out)).toBeLessThanOrEqual(DEAD_LETTER_SEND_BYTES);
    expect(out.key).toBe('transactions:3:9007199254740993');
    const letter = letterOf(out);
    expect(letter.truncated).toEqual({ original_bytes: 1_200_000, original_key_bytes: 200_000 });
    expect(letter.detail).toBe(
      'amount: must be number (the key, 200000 bytes, and the value, 1200000 bytes, are cut to their beginnings to fit the dead-letter topic; ' +
        'the whole is at offset 9007199254740993 of transactions partition 3)',
    );
    expect(letter.source).toEqual({
      topic: 'transactions',
      partition: 3,
      offset: '9007199254740993',
      key: letter.source.key,
      headers: { trace: 'abc' },
    });
    expect(letter.source.key!.length).toBeGreaterThanOrEqual(DEAD_LETTER_KEY_CHARS - 1);
    expect(letter.source.key!.length).toBeLessThanOrEqual(DEAD_LETTER_KEY_CHARS);
    expect(key.startsWith(letter.source.key!)).toBe(true);
    expect(letter.source.key).not.toMatch(/[\uD800-\uDBFF]$/);
    expect(text.startsWith(letter.value!)).toBe(true);
    // The value still takes what the key leaves.
    expect(letter.value!.length).toBeGreaterThan(DEAD_LETTER_SEND_BYTES - 10_000);
  });

  it('of a record with a huge key and a small value keeps the value whole and the beginning of the key, and says so', () => {
    const key = 'k'.repeat(200_000);
    const text = '{"amount": "12"}';
    const letter = letterOf(deadLetter(record(Buffer.from(text), key), 'invalid', 'amount: must be number', 'features'));
    expect(letter.value).toBe(text);
    expect(letter.source.key).toBe('k'.repeat(DEAD_LETTER_KEY_CHARS));
    expect(letter.truncated).toEqual({ original_key_bytes: 200_000 });
    expect(letter.detail).toBe(
      'amount: must be number (the key, 200000 bytes, is cut to its beginning to fit the dead-letter topic; ' +
        'the whole is at offset 9007199254740993 of transactions partition 3)',
    );
  });

  it('keeps the beginning of a huge detail (one naming a field with a huge name), within a send whatever the value', () => {
    const name = 'n'.repeat(950_000);
    const raw = Buffer.from(JSON.stringify({ features: { [name]: 'x' } }));
    const detail = `features.${name}: must be number`;
    const out = deadLetter(record(raw), 'invalid', detail, 'monitor');
    expect(recordBytes(out)).toBeLessThanOrEqual(DEAD_LETTER_SEND_BYTES);
    const letter = letterOf(out);
    expect(letter.detail.startsWith(`${detail.slice(0, DEAD_LETTER_DETAIL_CHARS)}… (${detail.length} characters) (the value, `)).toBe(true);
    expect(letter.truncated).toEqual({ original_bytes: raw.length });
  });

  it('within the size of a send is kept whole', () => {
    const text = 'x'.repeat(DEAD_LETTER_SEND_BYTES - 1_000);
    const letter = letterOf(deadLetter(record(Buffer.from(text)), 'malformed', 'x', 'c'));
    expect(letter.value).toBe(text);
    expect(letter.truncated).toBeUndefined();
  });

  it('go out in sends of a bounded size, in their order', () => {
    const letters = Array.from({ length: 50 }, (_, i) =>
      deadLetter({ ...record(Buffer.from('y'.repeat(1_000 * i))), offset: String(i) }, 'malformed', 'x', 'c'),
    );
    const sends = deadLetterSends(letters, 100_000);
    expect(sends.flat()).toEqual(letters);
    for (const send of sends) expect(send.reduce((sum, letter) => sum + recordBytes(letter), 0)).toBeLessThanOrEqual(100_000);
    expect(sends.length).toBeGreaterThan(1);
  });

  it('the detail of a decode failure travels with the record', () => {
    const raw = Buffer.from(JSON.stringify({ ...VALID, amount: -5 }));
    const decoded = validator.decode(raw);
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    const letter = letterOf(deadLetter(record(raw), decoded.reason, decoded.detail, 'features'));
    expect(letter.reason).toBe('invalid');
    expect(letter.detail).toBe('amount: must be >= 0');
    expect(JSON.parse(letter.value!)).toEqual({ ...VALID, amount: -5 });
  });
});
