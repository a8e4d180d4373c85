/** Decoding of source records into events (pure): parse, validate, read key and event time. */
import { parseEventTime, recordValidator, type LogRecord, type DeadLetterReason, type EventSource } from '@tributary/shared';
import type { TSchema } from 'typebox';

export interface SourceEvent {
  id: string;
  time: number;
  offset: string;
  /** The event's fields, with the event-time field as epoch ms. */
  values: Record<string, unknown>;
}

export type DecodeResult = { ok: true; event: SourceEvent } | { ok: false; reason: DeadLetterReason; detail: string };

export type SourceDecoder = (record: LogRecord) => DecodeResult;

export function sourceDecoder(source: EventSource & { schema: TSchema }): SourceDecoder {
  const validator = recordValidator<Record<string, unknown>>(source.schema);
  return (record) => {
    const decoded = validator.decode(record.value);
    if (!decoded.ok) return decoded;
    const values = decoded.value;
    const time = parseEventTime(values[source.eventTimeField]);
    if (time === null) return { ok: false, reason: 'invalid', detail: `${source.eventTimeField}: not a valid event time` };
    // The parsed object is this event's own: the event time is replaced in place.
    values[source.eventTimeField] = time;
    return { ok: true, event: { id: String(values[source.eventIdField]), time, offset: record.offset, values } };
  };
}
