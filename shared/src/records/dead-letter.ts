import type { LogRecord, OutgoingRecord } from '../event-log/types.js';

export type DeadLetterReason = 'malformed' | 'invalid' | 'late' | 'unknown_entity';

/** A dead-letter record: the original record, where it came from, and why it was set aside. */
export interface DeadLetter {
  reason: DeadLetterReason;
  detail: string;
  source: { topic: string; partition: number; offset: string; key: string | null };
  /** The original value as UTF-8 text when it decodes, else base64. */
  value: string | null;
  encoding: 'utf8' | 'base64';
  consumer: string;
  dead_lettered_at: string;
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
  const letter: DeadLetter = {
    reason,
    detail,
    source: { topic: record.topic, partition: record.partition, offset: record.offset, key: record.key },
    value,
    encoding,
    consumer,
    dead_lettered_at: new Date().toISOString(),
  };
  return {
    key: `${record.topic}:${record.partition}:${record.offset}`,
    value: JSON.stringify(letter),
    headers: { reason },
  };
}
