/**
 * The rules an event's time and id must meet to be applied at all, whenever it is read: the
 * feature pipeline dead-letters an event that breaks them as `invalid`, and the push API refuses
 * it with a 400 before it reaches the topic.
 */
import type { EventSource } from '../features/definition.js';
import { parseEventTime } from './validation.js';

/**
 * How far an event's time may be ahead of the time its record was logged: device and producer
 * clocks drift, and a device clock set an hour off (local time labelled UTC) is refused rather
 * than counted an hour from now. Kafka's own bound on record timestamps ahead of the broker's
 * clock (`log.message.timestamp.after.max.ms`) is an hour by default too. Such an event is
 * invalid; one within the bound is applied at its time but moves the watermark only to the
 * time its record was logged, so it makes no other event late.
 */
export const MAX_EVENT_TIME_AHEAD_MS = 60 * 60_000;

/** An event's id as text: a non-empty string, or a finite number; null for anything else (missing included). */
function eventId(value: unknown): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  return null;
}

/**
 * An event's id and time (epoch ms), or why it cannot be applied: its time does not parse, is
 * more than MAX_EVENT_TIME_AHEAD_MS ahead of `loggedAt` (when its record was logged, which
 * `loggedFrom` names in the message), or it has no id.
 */
export function checkEvent(
  source: Pick<EventSource, 'eventTimeField' | 'eventIdField'>,
  values: Record<string, unknown>,
  loggedAt: number,
  loggedFrom: string,
): { ok: true; id: string; time: number } | { ok: false; detail: string } {
  const time = parseEventTime(values[source.eventTimeField]);
  if (time === null) return { ok: false, detail: `${source.eventTimeField}: not a valid event time` };
  if (time > loggedAt + MAX_EVENT_TIME_AHEAD_MS) {
    return {
      ok: false,
      detail:
        `${source.eventTimeField}: ${new Date(time).toISOString()} is more than ${MAX_EVENT_TIME_AHEAD_MS / 60_000} minutes ahead ` +
        `of ${loggedFrom} ${new Date(loggedAt).toISOString()}`,
    };
  }
  // Duplicates are told by the id: events without one would all share one (and all but the first be dropped).
  const id = eventId(values[source.eventIdField]);
  if (id === null) return { ok: false, detail: `${source.eventIdField}: no event id (a non-empty string or a number)` };
  return { ok: true, id, time };
}
