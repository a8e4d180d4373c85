import type { EventLog, LogRecord, OutgoingRecord } from '../event-log/types.js';

export type DeadLetterReason = 'malformed' | 'invalid' | 'late';

/** A dead-letter record: the original record, where it came from, and why it was set aside. */
export interface DeadLetter {
  reason: DeadLetterReason;
  detail: string;
  /**
   * `key_encoding` is present (`base64`) when the key's bytes are not UTF-8 text: `key` then holds them in base64.
   * `headers`, present when the record had any: each header's value as text, or, with `header_encoding: 'base64'`
   * (a value that is not UTF-8 text, or a name given more than once), each header's values in base64.
   */
  source: {
    topic: string;
    partition: number;
    offset: string;
    key: string | null;
    key_encoding?: 'base64';
    headers?: Record<string, string> | Record<string, string[]>;
    header_encoding?: 'base64';
  };
  /** The original value as UTF-8 text when it decodes, else base64. */
  value: string | null;
  encoding: 'utf8' | 'base64';
  consumer: string;
  dead_lettered_at: string;
  /**
   * Present when the dead letter holds only the beginning of the original value (`original_bytes`:
   * the whole would not fit the dead-letter topic) or of its key (`original_key_bytes`: longer
   * than `DEAD_LETTER_KEY_CHARS`), or when it leaves the headers out (`original_header_bytes`: more than
   * `DEAD_LETTER_HEADER_CHARS`); the whole record stays at its offset.
   */
  truncated?: { original_bytes?: number; original_key_bytes?: number; original_header_bytes?: number };
}

/**
 * Bytes of dead letters per send, framing included. kafkajs sends a send's records of one partition as one record
 * batch, with no bound of its own, and the broker refuses a batch larger than its `message.max.bytes` (1,048,588
 * by default) each time it comes again. A dead letter is larger than its record (1.3 times for JSON, 1.6 times for a
 * value sent as base64): those of a fetch of bad records (up to 1 MiB a partition) went beyond the limit together.
 */
export const DEAD_LETTER_SEND_BYTES = 900_000;

/**
 * The longest beginning of a record's key (UTF-16 units) a dead letter keeps in `source.key`: keys
 * are ids, and a longer one (a record's key may be as large as its value) would leave the value no
 * room, or make the dead letter larger than a send on its own.
 */
export const DEAD_LETTER_KEY_CHARS = 1_024;

/**
 * The most characters of headers (their names and values, as the dead letter holds them) a dead letter keeps: headers
 * are ids and trace contexts; beyond that (a record's headers may be as large as its value) it leaves them all out.
 */
export const DEAD_LETTER_HEADER_CHARS = 16_384;

/** The longest `detail` a dead letter keeps (UTF-16 units): one naming a field of a record takes the field's name, as long as it is. */
export const DEAD_LETTER_DETAIL_CHARS = 2_048;

/** A record's own framing in a batch, at most: its length, attributes, timestamp and offset deltas, key, value and header lengths. */
const RECORD_FRAMING_BYTES = 64;

/** The bytes a record takes in a batch, at most. */
export function recordBytes(record: OutgoingRecord): number {
  let bytes = RECORD_FRAMING_BYTES + Buffer.byteLength(record.value) + (record.key === null ? 0 : Buffer.byteLength(record.key));
  for (const [name, value] of Object.entries(record.headers ?? {})) bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 10;
  return bytes;
}

/** The first `units` UTF-16 units of `text`, one fewer rather than half of a surrogate pair. */
function beginningOf(text: string, units: number): string {
  if (text.length <= units) return text;
  const last = text.charCodeAt(units - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? units - 1 : units);
}

/**
 * The headers a dead letter keeps of its record: as text, or every value in base64 when the text would not be exact
 * (`headerBytes`); none, with their size in bytes (`leftOut`), beyond `DEAD_LETTER_HEADER_CHARS`.
 */
function keptHeaders(record: LogRecord): { kept?: Record<string, string> | Record<string, string[]>; leftOut?: number } {
  let kept: Record<string, string> | Record<string, string[]>;
  let chars = 0;
  let bytes = 0;
  if (record.headerBytes) {
    // No prototype: a header named `__proto__` stays a header.
    const encoded = Object.create(null) as Record<string, string[]>;
    for (const [name, values] of Object.entries(record.headerBytes)) {
      encoded[name] = values.map((v) => v.toString('base64'));
      chars += name.length + encoded[name].reduce((sum, v) => sum + v.length, 0);
      bytes += Buffer.byteLength(name) + values.reduce((sum, v) => sum + v.length, 0);
    }
    kept = encoded;
  } else {
    const names = Object.keys(record.headers);
    if (names.length === 0) return {};
    for (const name of names) {
      chars += name.length + record.headers[name]!.length;
      bytes += Buffer.byteLength(name) + Buffer.byteLength(record.headers[name]!);
    }
    kept = record.headers;
  }
  return chars > DEAD_LETTER_HEADER_CHARS ? { leftOut: bytes } : { kept };
}

export function deadLetter(record: LogRecord, reason: DeadLetterReason, detail: string, consumer: string): OutgoingRecord {
  let value: string | null = null;
  let encoding: 'utf8' | 'base64' = 'utf8';
  if (record.value) {
    try {
      value = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(record.value);
    } catch {
      value = record.value.toString('base64');
      encoding = 'base64';
    }
  }
  if (detail.length > DEAD_LETTER_DETAIL_CHARS) detail = `${beginningOf(detail, DEAD_LETTER_DETAIL_CHARS)}… (${detail.length} characters)`;
  // A key that is not UTF-8 text is kept as base64 (whole quadruplets when cut: it still decodes).
  const sourceKey = record.keyBytes ? record.keyBytes.toString('base64') : record.key;
  const key =
    sourceKey === null
      ? null
      : beginningOf(sourceKey, record.keyBytes ? DEAD_LETTER_KEY_CHARS - (DEAD_LETTER_KEY_CHARS % 4) : DEAD_LETTER_KEY_CHARS);
  const keyBytes = key === sourceKey ? undefined : (record.keyBytes?.length ?? Buffer.byteLength(record.key!));
  const headers = keptHeaders(record);
  /** The detail and `truncated` of a dead letter whose key (when `keyBytes` is set), headers or value (`valueBytes`) are cut. */
  const cutTo = (valueBytes?: number): Pick<DeadLetter, 'detail' | 'truncated'> => {
    const parts = [
      ...(keyBytes === undefined ? [] : [`the key, ${keyBytes} bytes`]),
      ...(valueBytes === undefined ? [] : [`the value, ${valueBytes} bytes`]),
    ];
    const [is, beginning] = parts.length > 1 ? ['are', 'their beginnings'] : ['is', 'its beginning'];
    const changes = [
      ...(parts.length === 0 ? [] : [`${parts.join(', and ')}, ${is} cut to ${beginning}`]),
      ...(headers.leftOut === undefined ? [] : [`the headers, ${headers.leftOut} bytes, are left out`]),
    ];
    if (changes.length === 0) return { detail };
    return {
      detail: `${detail} (${changes.join(', and ')} to fit the dead-letter topic; the whole is at offset ${record.offset} of ${record.topic} partition ${record.partition})`,
      truncated: {
        ...(valueBytes !== undefined && { original_bytes: valueBytes }),
        ...(keyBytes !== undefined && { original_key_bytes: keyBytes }),
        ...(headers.leftOut !== undefined && { original_header_bytes: headers.leftOut }),
      },
    };
  };
  const letter: DeadLetter = {
    reason,
    ...cutTo(),
    source: {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key,
      ...(record.keyBytes && { key_encoding: 'base64' }),
      ...(headers.kept && { headers: headers.kept }),
      ...(headers.kept && record.headerBytes && { header_encoding: 'base64' }),
    },
    value,
    encoding,
    consumer,
    dead_lettered_at: new Date().toISOString(),
  };
  const out = (letter: DeadLetter): OutgoingRecord => ({
    key: `${record.topic}:${record.partition}:${record.offset}`,
    value: JSON.stringify(letter),
    headers: { reason },
  });
  const whole = out(letter);
  if (value === null || recordBytes(whole) <= DEAD_LETTER_SEND_BYTES) return whole;
  // A record near the broker's limit: its dead letter could never be sent, and would hold its partition back for ever.
  const cut: DeadLetter = { ...letter, ...cutTo(record.value!.length) };
  // The longest beginning that fits: whole characters, or whole base64 quadruplets (it still decodes).
  const text = value;
  const unit = encoding === 'base64' ? 4 : 1;
  const beginning = (units: number) => out({ ...cut, value: beginningOf(text, units * unit) });
  let fits = 0;
  let fitsNot = Math.ceil(text.length / unit);
  while (fitsNot - fits > 1) {
    const middle = Math.floor((fits + fitsNot) / 2);
    if (recordBytes(beginning(middle)) <= DEAD_LETTER_SEND_BYTES) fits = middle;
    else fitsNot = middle;
  }
  return beginning(fits);
}

/** Dead letters in sends of at most `maxBytes` each (see `DEAD_LETTER_SEND_BYTES`), in their order. */
export function deadLetterSends(letters: OutgoingRecord[], maxBytes = DEAD_LETTER_SEND_BYTES): OutgoingRecord[][] {
  const sends: OutgoingRecord[][] = [];
  let bytes = Infinity;
  for (const letter of letters) {
    const size = recordBytes(letter);
    if (bytes + size > maxBytes) {
      sends.push([]);
      bytes = 0;
    }
    sends.at(-1)!.push(letter);
    bytes += size;
  }
  return sends;
}

/**
 * Publishes dead letters in sends of a bounded size (`deadLetterSends`). Each send's letters are taken out of
 * `letters` once it is published (and given to `sent`): when a send fails, `letters` holds those still to publish.
 */
export async function publishDeadLetters(
  eventLog: Pick<EventLog, 'publish'>,
  topic: string,
  letters: OutgoingRecord[],
  sent: (letters: OutgoingRecord[]) => void = () => {},
): Promise<void> {
  for (const send of deadLetterSends(letters)) {
    await eventLog.publish(topic, send);
    letters.splice(0, send.length);
    sent(send);
  }
}
