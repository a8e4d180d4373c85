/** Decoding of source records into events (pure): parse, validate, read key and event time. */
import { parseEventTime, recordValidator, type LogRecord, type DeadLetterReason, type EventSource } from '@tributary/shared';
import type { TSchema } from 'typebox';

export interface SourceEvent {
  id: string;
  time: number;
  /**
   * Epoch ms: when the event's record was logged, as far as the log vouches for it (see
   * `loggedAt`). No event happened later than its record was logged: a partition's watermark
   * moves to min(time, loggedAt) at most (watermark.ts).
   */
  loggedAt: number;
  offset: string;
  /** The event's fields, with the event-time field as epoch ms. */
  values: Record<string, unknown>;
}

export type DecodeResult = { ok: true; event: SourceEvent } | { ok: false; reason: DeadLetterReason; detail: string };

/** Decodes a record read at `readAt` (epoch ms): the pipeline's clock when it reads a batch, the time a replay began. */
export type SourceDecoder = (record: LogRecord, readAt: number) => DecodeResult;

/**
 * How far an event's time may be ahead of the time its record was logged: device and producer
 * clocks drift, and a device clock set an hour off (local time labelled UTC) is refused rather
 * than counted an hour from now. Kafka's own bound on record timestamps ahead of the broker's
 * clock (`log.message.timestamp.after.max.ms`) is an hour by default too. Such an event is
 * invalid; one within the bound is applied at its time but moves the watermark only to the
 * time its record was logged, so it makes no other event late.
 */
export const MAX_EVENT_TIME_AHEAD_MS = 60 * 60_000;

/**
 * When a record was logged, as far as the log vouches for it: its timestamp, unless it has
 * none (0 or less: an events file's lines, old message formats) or one later than the time it
 * is read (a producer's clock ahead, or a producer that stamps records with their event time):
 * then the time it is read. A record read back later (a replay, a backfill) keeps its timestamp.
 */
function loggedAt(record: LogRecord, readAt: number): number {
  return record.timestamp > 0 && record.timestamp <= readAt ? record.timestamp : readAt;
}

/** An event's id as text: a non-empty string, or a finite number; null for anything else (missing included). */
function eventId(value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  return null;
}

export function sourceDecoder(source: EventSource & { schema: TSchema }): SourceDecoder {
  const validator = recordValidator<Record<string, unknown>>(source.schema);
  return (record, readAt) => {
    const decoded = validator.decode(record.value);
    if (!decoded.ok) return decoded;
    const values = decoded.value;
    const time = parseEventTime(values[source.eventTimeField]);
    if (time === null) return { ok: false, reason: 'invalid', detail: `${source.eventTimeField}: not a valid event time` };
    const logged = loggedAt(record, readAt);
    if (time > logged + MAX_EVENT_TIME_AHEAD_MS) {
      const reference = logged === record.timestamp ? "its record's timestamp" : 'the time its record was read';
      return {
        ok: false,
        reason: 'invalid',
        detail:
          `${source.eventTimeField}: ${new Date(time).toISOString()} is more than ${MAX_EVENT_TIME_AHEAD_MS / 60_000} minutes ahead ` +
          `of ${reference} ${new Date(logged).toISOString()}`,
      };
    }
    // Duplicates are told by the id: events without one would all share one (and all but the first be dropped).
    const id = eventId(values[source.eventIdField]);
    if (id === null)
      return { ok: false, reason: 'invalid', detail: `${source.eventIdField}: no event id (a non-empty string or a number)` };
    // The parsed object is this event's own: the event time is replaced in place.
    values[source.eventTimeField] = time;
    return { ok: true, event: { id, time, loggedAt: logged, offset: record.offset, values } };
  };
}
