/** Decoding of source records into events (pure): parse, validate, read key and event time. */
import { checkEvent, recordValidator, type LogRecord, type DeadLetterReason, type EventSource } from '@tributary/shared';
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
 * When a record was logged, as far as the log vouches for it: its timestamp, unless it has
 * none (0 or less: an events file's lines, old message formats) or one later than the time it
 * is read (a producer's clock ahead, or a producer that stamps records with their event time):
 * then the time it is read. A record read back later (a replay, a backfill) keeps its timestamp.
 */
function loggedAt(record: LogRecord, readAt: number): number {
  return record.timestamp > 0 && record.timestamp <= readAt ? record.timestamp : readAt;
}

export function sourceDecoder(source: EventSource & { schema: TSchema }): SourceDecoder {
  const validator = recordValidator<Record<string, unknown>>(source.schema);
  return (record, readAt) => {
    const decoded = validator.decode(record.value);
    if (!decoded.ok) return decoded;
    const values = decoded.value;
    const logged = loggedAt(record, readAt);
    const checked = checkEvent(
      source,
      values,
      logged,
      logged === record.timestamp ? "its record's timestamp" : 'the time its record was read',
    );
    if (!checked.ok) return { ok: false, reason: 'invalid', detail: checked.detail };
    const { id, time } = checked;
    // The parsed object is this event's own: the event time is replaced in place.
    values[source.eventTimeField] = time;
    return { ok: true, event: { id, time, loggedAt: logged, offset: record.offset, values } };
  };
}
