/**
 * The hostile-input corpus: HTTP bodies for the inference API (after the cases of
 * services/inference/test/fuzz.test.ts, sent here over real sockets to a running process)
 * and Kafka records for the transactions and labels topics. Each case says what must come
 * of it: `reject` (a 4xx answer, or the dead-letter topic with a reason), `ok` (a 2xx
 * answer, or applied / joined), `any` (anything but a 5xx or a crash).
 */
import type { OutgoingRecord } from '@tributary/shared';

export type Expect = 'ok' | 'reject' | 'any';

export interface HttpCase {
  name: string;
  method?: string;
  path: string;
  body?: string | Buffer;
  /** null: no content-type header; default application/json when there is a body. */
  contentType?: string | null;
  headers?: Record<string, string>;
  expect: Expect;
}

const MB = 1_000_000;
const MiB = 1024 * 1024;

export const validRequest = {
  request_id: 'hostile-1',
  entities: { user_id: 'u_1', merchant_id: 'm_1' },
  features: { amount: 125.5, country: 'US', channel: 'web' },
};
const validEvent = {
  event_id: 'e_hostile',
  user_id: 'u_1',
  merchant_id: 'm_1',
  amount: 10,
  currency: 'USD',
  country: 'US',
  channel: 'web',
  ts: 1_700_000_000_000,
};
const valid = JSON.stringify(validRequest);
const validEventText = JSON.stringify(validEvent);
/** `value` as JSON with the string "@" replaced by the bare `token`. */
const splice = (value: object, token: string) => JSON.stringify(value).replace('"@"', token);
const nested = (levels: number, open: string, close: string, inner = '1') => open.repeat(levels) + inner + close.repeat(levels);
const bytesIn = (text: string, bytes: number[]) => {
  const [before, after] = text.split('@') as [string, string];
  return Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);
};

export function httpCorpus(): HttpCase[] {
  const cases: HttpCase[] = [];
  const add = (c: HttpCase) => cases.push(c);
  const PREDICT = '/v1/predict';
  const BATCH = '/v1/predict/batch';
  const EVENTS = '/v1/events/transactions';

  // Valid controls: the service still answers what it should.
  add({ name: 'valid prediction', path: PREDICT, body: valid, expect: 'ok' });
  add({
    name: 'valid batch',
    path: BATCH,
    body: JSON.stringify({ rows: [validRequest, { ...validRequest, request_id: 'h2' }] }),
    expect: 'ok',
  });
  add({ name: 'valid event', path: EVENTS, body: validEventText, expect: 'ok' });
  add({
    name: 'unknown entity ids (defaults)',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, entities: { user_id: 'nobody', merchant_id: 'nowhere' } }),
    expect: 'ok',
  });
  add({ name: 'features of an unknown id', method: 'GET', path: '/v1/features/user_id/nobody', expect: 'ok' });

  // NaN / Infinity / extreme and negative numbers where a number belongs.
  for (const token of [
    'NaN',
    'Infinity',
    '-Infinity',
    '1e309',
    '1e308',
    '-1e308',
    '-1',
    '-0.01',
    '1000000000.5',
    '"12"',
    'null',
    'true',
    '[1]',
    '{"valueOf":1}',
    '0x10',
    '1'.repeat(100_000),
  ]) {
    const short = token.length > 16 ? `${token.slice(0, 8)}…(${token.length} chars)` : token;
    add({
      name: `predict: amount ${short}`,
      path: PREDICT,
      body: splice({ ...validRequest, features: { ...validRequest.features, amount: '@' } }, token),
      expect: 'reject',
    });
    add({ name: `event: amount ${short}`, path: EVENTS, body: splice({ ...validEvent, amount: '@' }, token), expect: 'reject' });
  }
  for (const token of ['NaN', '1e308', '-1', '1.5', '8640000000000001', '"yesterday"', '"2024-13-01T00:00:00Z"', '"\\ud800"']) {
    add({ name: `event: ts ${token}`, path: EVENTS, body: splice({ ...validEvent, ts: '@' }, token), expect: 'reject' });
  }
  for (const token of [
    '',
    'null',
    'NaN',
    'Infinity',
    '1e308',
    '"text"',
    'true',
    '[]',
    '{}',
    '{"request_id":',
    `${valid}garbage`,
    valid.slice(0, -1),
  ]) {
    add({ name: `predict: the whole body is ${JSON.stringify(token.slice(0, 20))}`, path: PREDICT, body: token, expect: 'reject' });
    add({ name: `events: the whole body is ${JSON.stringify(token.slice(0, 20))}`, path: EVENTS, body: token, expect: 'reject' });
  }

  // Wrong types at each field.
  for (const [field, value] of [
    ['request_id', 1],
    ['request_id', ''],
    ['entities', 'u_1'],
    ['entities', null],
    ['features', []],
    ['features', { amount: 1 }],
  ] as const) {
    add({
      name: `predict: ${field} = ${JSON.stringify(value)}`,
      path: PREDICT,
      body: JSON.stringify({ ...validRequest, [field]: value }),
      expect: 'reject',
    });
  }
  add({
    name: 'predict: an unknown entity type',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, entities: { ...validRequest.entities, device_id: 'd' } }),
    expect: 'reject',
  });
  add({ name: 'predict: no entities', path: PREDICT, body: JSON.stringify({ ...validRequest, entities: {} }), expect: 'reject' });
  add({
    name: 'predict: an entity id with spaces',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, entities: { user_id: 'a b', merchant_id: 'm' } }),
    expect: 'reject',
  });
  add({ name: 'event: an unknown field', path: EVENTS, body: JSON.stringify({ ...validEvent, extra: 1 }), expect: 'reject' });
  add({ name: 'event: a missing field', path: EVENTS, body: JSON.stringify({ ...validEvent, user_id: undefined }), expect: 'reject' });

  // Huge strings (about 1 MB, under the 1 MiB body limit).
  add({
    name: 'predict: a 1 MB request_id',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, request_id: 'x'.repeat(MB) }),
    expect: 'reject',
  });
  add({
    name: 'predict: a 1 MB user_id',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, entities: { user_id: 'u'.repeat(MB), merchant_id: 'm' } }),
    expect: 'reject',
  });
  add({
    name: 'predict: a 1 MB country of 3-byte characters',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, features: { ...validRequest.features, country: '€'.repeat(MB / 3) } }),
    expect: 'reject',
  });
  add({
    name: 'predict: a 1 MB unknown key',
    path: PREDICT,
    body: JSON.stringify({ ...validRequest, ['k'.repeat(MB)]: 1 }),
    expect: 'reject',
  });
  add({
    name: 'event: a 1 MB event_id',
    path: EVENTS,
    body: JSON.stringify({ ...validEvent, event_id: 'e'.repeat(MB) }),
    expect: 'reject',
  });
  add({ name: 'features: a 100,000-character id', method: 'GET', path: `/v1/features/user_id/${'x'.repeat(100_000)}`, expect: 'reject' });

  // Deep nesting.
  for (const levels of [10_000, 300_000]) {
    for (const path of [PREDICT, BATCH, EVENTS]) {
      add({ name: `${path}: ${levels} nested arrays`, path, body: nested(levels, '[', ']'), expect: 'reject' });
      add({ name: `${path}: ${levels} nested objects`, path, body: nested(levels, '{"a":', '}'), expect: 'reject' });
    }
    add({
      name: `predict: ${levels} nested arrays as the amount`,
      path: PREDICT,
      body: splice({ ...validRequest, features: { ...validRequest.features, amount: '@' } }, nested(levels, '[', ']')),
      expect: 'reject',
    });
    add({
      name: `event: ${levels} nested objects under an unknown key`,
      path: EVENTS,
      body: splice({ ...validEvent, extra: '@' }, nested(levels, '{"a":', '}')),
      expect: 'reject',
    });
  }

  // __proto__ / constructor / prototype keys.
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    for (const value of ['{"polluted":true}', '{"prototype":{"polluted":true}}', 'null']) {
      add({
        name: `predict: "${key}": ${value} at the root`,
        path: PREDICT,
        body: valid.replace('{', `{"${key}":${value},`),
        expect: 'reject',
      });
      add({
        name: `predict: "${key}": ${value} in entities`,
        path: PREDICT,
        body: valid.replace('"entities":{', `"entities":{"${key}":${value},`),
        expect: 'reject',
      });
      add({
        name: `predict: "${key}": ${value} in features`,
        path: PREDICT,
        body: valid.replace('"features":{', `"features":{"${key}":${value},`),
        expect: 'reject',
      });
      add({ name: `event: "${key}": ${value}`, path: EVENTS, body: validEventText.replace('{', `{"${key}":${value},`), expect: 'reject' });
    }
    add({ name: `predict: "${key}" in the query`, path: `${PREDICT}?${key}[polluted]=1`, body: valid, expect: 'reject' });
    add({ name: `events: "${key}" as the source`, path: `/v1/events/${key}`, body: validEventText, expect: 'reject' });
    add({ name: `features: "${key}" as the entity`, method: 'GET', path: `/v1/features/${key}/x`, expect: 'reject' });
  }

  // Wrong encodings.
  for (const [name, bytes] of [
    ['0xff', [0xff]],
    ['a lone continuation byte', [0x80]],
    ['an overlong "/"', [0xc0, 0xaf]],
    ['a CESU-8 surrogate', [0xed, 0xa0, 0x80]],
    ['a NUL byte', [0x00]],
  ] as [string, number[]][]) {
    add({ name: `predict: ${name} in user_id`, path: PREDICT, body: bytesIn(valid.replace('"u_1"', '"u_1@"'), bytes), expect: 'reject' });
    add({
      name: `predict: ${name} outside strings`,
      path: PREDICT,
      body: bytesIn(valid.replace(',"features"', '@,"features"'), bytes),
      expect: 'reject',
    });
    add({
      name: `event: ${name} in event_id`,
      path: EVENTS,
      body: bytesIn(validEventText.replace('"e_hostile"', '"e@"'), bytes),
      expect: 'reject',
    });
  }
  add({
    name: 'predict: UTF-16LE with a byte order mark',
    path: PREDICT,
    body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(valid, 'utf16le')]),
    contentType: 'application/json; charset=utf-16',
    expect: 'reject',
  });
  add({
    name: 'predict: UTF-16BE without a byte order mark',
    path: PREDICT,
    body: Buffer.from(valid, 'utf16le').swap16(),
    expect: 'reject',
  });
  add({ name: 'predict: Latin-1 é in country', path: PREDICT, body: bytesIn(valid.replace('"US"', '"U@"'), [0xe9]), expect: 'reject' });

  // Content types, empty and oversized bodies.
  for (const contentType of [
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/octet-stream',
    '',
    'x'.repeat(10_000),
    null,
  ]) {
    add({
      name: `predict: content-type ${contentType === null ? '(none)' : JSON.stringify(contentType.slice(0, 30))}`,
      path: PREDICT,
      body: valid,
      contentType,
      expect: 'reject',
    });
  }
  add({ name: 'predict: no body', path: PREDICT, contentType: null, expect: 'reject' });
  add({ name: 'predict: a 2 MiB body', path: PREDICT, body: valid + ' '.repeat(2 * MiB), expect: 'reject' });
  add({ name: 'events: a 20 MiB body', path: EVENTS, body: `[${'1,'.repeat(10 * MiB)}1]`, expect: 'reject' });
  add({
    name: 'predict: a gzip content-encoding on plain JSON',
    path: PREDICT,
    body: valid,
    headers: { 'content-encoding': 'gzip' },
    expect: 'any',
  });

  // Empty and giant batches.
  const row = JSON.stringify({
    request_id: 'r',
    entities: { user_id: 'u', merchant_id: 'm' },
    features: { amount: 1, country: 'US', channel: 'web' },
  });
  const rows = (n: number, one = row) => `{"rows":[${Array.from({ length: n }, () => one).join(',')}]}`;
  add({ name: 'batch: no rows', path: BATCH, body: '{"rows":[]}', expect: 'reject' });
  add({ name: 'batch: 256 rows', path: BATCH, body: rows(256), expect: 'ok' });
  add({ name: 'batch: 257 rows', path: BATCH, body: rows(257), expect: 'reject' });
  add({ name: 'batch: 9,000 rows', path: BATCH, body: rows(9_000), expect: 'reject' });
  add({ name: 'batch: 100,000 nulls', path: BATCH, body: rows(100_000, 'null'), expect: 'reject' });
  add({ name: 'events: an empty array', path: EVENTS, body: '[]', expect: 'reject' });
  add({ name: 'events: 1,001 events', path: EVENTS, body: `[${Array(1_001).fill(validEventText).join(',')}]`, expect: 'reject' });
  add({ name: 'events: 100,000 zeros', path: EVENTS, body: `[${Array(100_000).fill(0).join(',')}]`, expect: 'reject' });
  add({
    name: 'events: 1,000 events, the last invalid',
    path: EVENTS,
    body: `[${Array(999).fill(validEventText).join(',')},${validEventText.replace('"USD"', '"usd"')}]`,
    expect: 'reject',
  });

  // Routes, methods and queries that do not exist or do not fit.
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH'])
    add({ name: `${method} /v1/predict`, method, path: PREDICT, body: method === 'GET' ? undefined : valid, expect: 'reject' });
  add({ name: 'events: an unknown source', path: '/v1/events/clicks', body: validEventText, expect: 'reject' });
  add({ name: 'predict: explain=yes', path: `${PREDICT}?explain=yes`, body: valid, expect: 'reject' });
  add({ name: 'predict: 20,000 query parameters', path: `${PREDICT}?${'a=1&'.repeat(20_000)}`, body: valid, expect: 'reject' });
  add({ name: 'features: a bad percent-encoding', method: 'GET', path: '/v1/features/user_id/%ff', expect: 'reject' });
  add({ name: 'features: an unknown entity type', method: 'GET', path: '/v1/features/device_id/d1', expect: 'reject' });
  add({ name: 'GET /nowhere', method: 'GET', path: '/nowhere', expect: 'reject' });
  // Admin routes on a service without admin keys: refused.
  add({ name: 'admin: list without a key', method: 'GET', path: '/admin/models/fraud_detector', expect: 'reject' });
  add({
    name: 'admin: promote without a key',
    path: '/admin/models/fraud_detector/promote',
    body: '{"version":"1","reason":"x"}',
    expect: 'reject',
  });
  return cases;
}

/** Raw bytes on a socket that no HTTP client would send: the server must answer 4xx or close, and live on. */
export function rawCorpus(): { name: string; bytes: Buffer }[] {
  const crlf = (lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return [
    { name: 'garbage request line', bytes: Buffer.from('GARBAGE\r\n\r\n') },
    { name: 'binary junk', bytes: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)) },
    { name: 'a 100 KB header', bytes: crlf(['GET /healthz HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(100_000)}`]) },
    { name: 'a NUL in a header', bytes: crlf(['GET /healthz HTTP/1.1', 'Host: x', 'X-Bad: a\u0000b']) },
    {
      name: 'two content-lengths',
      bytes: Buffer.concat([
        crlf(['POST /v1/predict HTTP/1.1', 'Host: x', 'Content-Type: application/json', 'Content-Length: 5', 'Content-Length: 50']),
        Buffer.from('{}'),
      ]),
    },
    {
      name: 'content-length and chunked',
      bytes: Buffer.concat([
        crlf(['POST /v1/predict HTTP/1.1', 'Host: x', 'Content-Type: application/json', 'Content-Length: 5', 'Transfer-Encoding: chunked']),
        Buffer.from('0\r\n\r\n'),
      ]),
    },
    {
      name: 'bad chunk sizes',
      bytes: Buffer.concat([
        crlf(['POST /v1/predict HTTP/1.1', 'Host: x', 'Content-Type: application/json', 'Transfer-Encoding: chunked']),
        Buffer.from('zz\r\n{}\r\n0\r\n\r\n'),
      ]),
    },
    { name: 'HTTP/0.9', bytes: Buffer.from('GET /\r\n') },
    { name: 'HTTP/9.9', bytes: crlf(['GET /healthz HTTP/9.9', 'Host: x']) },
    {
      name: 'a body shorter than its content-length, then close',
      bytes: Buffer.concat([
        crlf(['POST /v1/predict HTTP/1.1', 'Host: x', 'Content-Type: application/json', 'Content-Length: 100']),
        Buffer.from('{"a":'),
      ]),
    },
  ];
}

export interface KafkaCase {
  name: string;
  topic: 'transactions' | 'labels';
  /** Headers as any Kafka client may send them: bytes, repeated names (an array), any name. */
  record: OutgoingRecord | { key: string; value: Buffer | null; headers?: Record<string, string | Buffer | (string | Buffer)[]> };
  expect: 'reject' | 'ok';
}

/** Headers no producer of the project sends: a name `__proto__` (kafkajs decodes it oddly), bytes that are not UTF-8, a repeated name. */
const hostileHeaders = (extra: Record<string, string> = {}) => ({
  ...(JSON.parse('{"__proto__": "polluted"}') as Record<string, string>),
  origin: Buffer.from([0xff, 0xfe, 0x00]),
  tag: ['a', 'b'],
  ...extra,
});

/** Hostile records for the transactions topic (consumed by the feature pipeline) and the labels topic (the monitor). */
export function kafkaCorpus(run: string, now: number): KafkaCase[] {
  const cases: KafkaCase[] = [];
  let n = 0;
  type Headers = ReturnType<typeof hostileHeaders>;
  const txn = (name: string, value: string | Buffer | null, expect: 'reject' | 'ok' = 'reject', headers?: Headers) =>
    cases.push({ name, topic: 'transactions', record: { key: `${run}-h${n++}`, value: value as Buffer, headers }, expect });
  const lbl = (name: string, value: string | Buffer | null, expect: 'reject' | 'ok' = 'reject', headers?: Headers) =>
    cases.push({ name, topic: 'labels', record: { key: `${run}-h${n++}`, value: value as Buffer, headers }, expect });
  const event = { ...validEvent, event_id: `${run}-bad`, user_id: `${run}-hostile-user`, ts: now - 60_000 };
  const eventText = JSON.stringify(event);

  txn('invalid JSON', '{"event_id": "x", "amount": ');
  txn('not JSON at all', 'hello');
  txn('empty value', '');
  txn('null value (a tombstone)', null);
  txn('bare NaN', eventText.replace('"amount":10', '"amount":NaN'));
  txn('bare Infinity', eventText.replace('"amount":10', '"amount":Infinity'));
  txn('amount 1e308', eventText.replace('"amount":10', '"amount":1e308'));
  txn('amount 1e309 (Infinity when parsed)', eventText.replace('"amount":10', '"amount":1e309'));
  txn('a negative amount', eventText.replace('"amount":10', '"amount":-42'));
  txn('amount as a string', eventText.replace('"amount":10', '"amount":"10"'));
  txn('amount null', eventText.replace('"amount":10', '"amount":null'));
  txn('ts -1', eventText.replace(/"ts":\d+/, '"ts":-1'));
  txn('ts 1.5', eventText.replace(/"ts":\d+/, '"ts":1.5'));
  txn('ts 1e308', eventText.replace(/"ts":\d+/, '"ts":1e308'));
  txn('ts "yesterday"', eventText.replace(/"ts":\d+/, '"ts":"yesterday"'));
  txn('user_id a number', eventText.replace(/"user_id":"[^"]+"/, '"user_id":42'));
  txn('user_id empty', eventText.replace(/"user_id":"[^"]+"/, '"user_id":""'));
  txn('a missing field', JSON.stringify({ ...event, merchant_id: undefined }));
  txn('an unknown field', JSON.stringify({ ...event, extra: true }));
  txn('a 500 KB user_id', JSON.stringify({ ...event, user_id: 'u'.repeat(500_000) }));
  txn('a 500 KB unknown field', JSON.stringify({ ...event, junk: 'j'.repeat(500_000) }));
  txn('100,000 nested arrays', nested(100_000, '[', ']'));
  txn('100,000 nested objects under an unknown key', splice({ ...event, extra: '@' }, nested(100_000, '{"a":', '}')));
  txn('"__proto__" key', eventText.replace('{', '{"__proto__":{"polluted":true},'));
  txn('"constructor" key', eventText.replace('{', '{"constructor":{"prototype":{"polluted":true}},'));
  txn('a JSON array of events', `[${eventText},${eventText}]`);
  txn('a JSON string', JSON.stringify(eventText));
  txn(
    'invalid UTF-8',
    Buffer.concat([Buffer.from(eventText.slice(0, 20)), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from(eventText.slice(20))]),
  );
  txn('UTF-16LE JSON', Buffer.from(eventText, 'utf16le'));
  txn('a Latin-1 byte in a string', bytesIn(eventText.replace('"USD"', '"US@"'), [0xc9]));
  // Valid by its schema, but its time is the year 275760: it would move the partition's watermark so far that every later event is late.
  txn('ts 8.64e15 (the year 275760)', eventText.replace(/"ts":\d+/, '"ts":8640000000000000'));
  txn('invalid JSON with hostile headers and 300 KB of them', '{"event_id": ', 'reject', hostileHeaders({ big: 'h'.repeat(300_000) }));
  // Valid events about entities never seen before: applied.
  txn('a valid event of an unknown user', JSON.stringify({ ...event, event_id: `${run}-ok-1`, user_id: `${run}-new-user` }), 'ok');
  txn(
    'a valid event with a byte order mark',
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ ...event, event_id: `${run}-ok-2` }))]),
    'ok',
  );
  txn(
    'a valid event with hostile headers',
    JSON.stringify({ ...event, event_id: `${run}-ok-3`, user_id: `${run}-new-user-3` }),
    'ok',
    hostileHeaders(),
  );

  // Each bad label names a request of its own (no prediction): accepted, it would wait for one.
  const labelText = (): string => JSON.stringify({ request_id: `${run}-hostile-label-${n}`, label: 1, ts: now });
  lbl('invalid JSON', '{"request_id": ');
  lbl('empty value', '');
  lbl('null value', null);
  lbl('label 2', labelText().replace('"label":1', '"label":2'));
  lbl('label "1"', labelText().replace('"label":1', '"label":"1"'));
  lbl('label NaN', labelText().replace('"label":1', '"label":NaN'));
  lbl('ts -5', labelText().replace(/"ts":\d+/, '"ts":-5'));
  lbl('ts 1e308', labelText().replace(/"ts":\d+/, '"ts":1e308'), 'reject');
  lbl('ts Infinity', labelText().replace(/"ts":\d+/, '"ts":Infinity'));
  lbl('request_id empty', labelText().replace(/"request_id":"[^"]+"/, '"request_id":""'));
  lbl('request_id of 300 characters', labelText().replace(/"request_id":"[^"]+"/, `"request_id":"${'r'.repeat(300)}"`));
  lbl('an unknown field', labelText().replace('{', '{"extra":1,'));
  lbl('"__proto__" key', labelText().replace('{', '{"__proto__":{"polluted":true},'));
  lbl('100,000 nested arrays', nested(100_000, '[', ']'));
  lbl('invalid UTF-8', bytesIn(labelText().replace('"request_id"', '"request@_id"'), [0xc0, 0xaf]));
  lbl('ts "yesterday"', labelText().replace(/"ts":\d+/, '"ts":"yesterday"'));
  lbl('invalid JSON with hostile headers', '{"request_id": ', 'reject', hostileHeaders());
  return cases;
}
