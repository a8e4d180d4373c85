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

/**
 * How far an event's time may be ahead of its record's timestamp on the log: producers'
 * clocks drift a little, but an event claiming a time far in the future would move its
 * partition's watermark so far that every later event is late. It is invalid instead. The
 * record's timestamp, not the clock, so that a replay decides alike; a record without one (a
 * line of an events file) is judged against the time it was read (`readAt`), when given.
 */
export const MAX_EVENT_TIME_AHEAD_MS = 60 * 60_000;

/** An event's id as text: a non-empty string, or a finite number; null for anything else (missing included). */
function eventId(value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  return null;
}

export interface SourceDecoderOptions {
  /**
   * Epoch ms: when records without a log timestamp (an events file's lines) were read. Their
   * events more than MAX_EVENT_TIME_AHEAD_MS after it are invalid, as online an event that far
   * ahead of its record's timestamp is. Without it such records are not checked.
   */
  readAt?: number;
}

export function sourceDecoder(source: EventSource & { schema: TSchema }, options: SourceDecoderOptions = {}): SourceDecoder {
  const validator = recordValidator<Record<string, unknown>>(source.schema);
  return (record) => {
    const decoded = validator.decode(record.value);
    if (!decoded.ok) return decoded;
    const values = decoded.value;
    const time = parseEventTime(values[source.eventTimeField]);
    if (time === null) return { ok: false, reason: 'invalid', detail: `${source.eventTimeField}: not a valid event time` };
    const logged = record.timestamp > 0;
    const reference = logged ? record.timestamp : options.readAt;
    if (reference !== undefined && time > reference + MAX_EVENT_TIME_AHEAD_MS) {
      return {
        ok: false,
        reason: 'invalid',
        detail:
          `${source.eventTimeField}: ${new Date(time).toISOString()} is more than ${MAX_EVENT_TIME_AHEAD_MS / 60_000} minutes ahead ` +
          `of ${logged ? "the record's timestamp" : 'the time the events were read'} ${new Date(reference).toISOString()}`,
      };
    }
    // Duplicates are told by the id: events without one would all share one (and all but the first be dropped).
    const id = eventId(values[source.eventIdField]);
    if (id === null)
      return { ok: false, reason: 'invalid', detail: `${source.eventIdField}: no event id (a non-empty string or a number)` };
    // The parsed object is this event's own: the event time is replaced in place.
    values[source.eventTimeField] = time;
    return { ok: true, event: { id, time, offset: record.offset, values } };
  };
}
