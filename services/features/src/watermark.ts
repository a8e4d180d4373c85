/**
 * A source partition's event-time rules (pure), the same in the pipeline and in every replay
 * (backfill, training sets), record by record in offset order:
 *
 * - The watermark is the highest of min(event time, time logged) over the partition's events
 *   so far (`SourceEvent.loggedAt`): an event cannot have happened after its record was logged,
 *   so a device clock ahead does not move the watermark past what the log vouches for (as
 *   Flink's and Kafka Streams' watermarks follow the source's timestamps).
 * - An event older than the watermark by more than the allowed lateness is late.
 * - An event is a duplicate when the partition admitted an event with its id whose time is
 *   within the allowed lateness of the watermark (not older than the watermark minus the
 *   lateness), the watermark as before the event. Past that the id is free again, whenever
 *   the memory that holds it is pruned (flushes) or read back (restarts): the decision is the same.
 * - Otherwise the event is admitted, and its id and time recorded (a duplicate records
 *   nothing: the first admitted copy's time decides).
 */
import type { SourceEvent } from './decode.js';

export interface PartitionProgress {
  /** The highest of min(event time, time logged) so far; -Infinity before the first event. */
  watermark: number;
  /**
   * The ids of the admitted events and their event times, in the order they were recorded. Ids
   * older than the watermark minus the lateness no longer count: they may be forgotten any time.
   */
  seen: Map<string, number>;
}

export type Admission = { verdict: 'admitted' } | { verdict: 'duplicate' } | { verdict: 'late'; detail: string };

/** The decision on an event of the partition (the next in offset order); moves its watermark and records its id. */
export function admitEvent(progress: PartitionProgress, event: SourceEvent, allowedLatenessMs: number): Admission {
  const lowWatermark = progress.watermark - allowedLatenessMs;
  if (event.time < lowWatermark) {
    return {
      verdict: 'late',
      detail: `event time ${new Date(event.time).toISOString()} is older than the watermark ${new Date(lowWatermark).toISOString()} (allowed lateness ${allowedLatenessMs} ms)`,
    };
  }
  const vouched = Math.min(event.time, event.loggedAt);
  if (vouched > progress.watermark) progress.watermark = vouched;
  const seenAt = progress.seen.get(event.id);
  if (seenAt !== undefined && seenAt >= lowWatermark) return { verdict: 'duplicate' };
  recordId(progress.seen, event.id, event.time);
  return { verdict: 'admitted' };
}

/** Records an id as seen at `time`, last in the order (so that `pruneSeen` finds the oldest first). */
export function recordId(seen: Map<string, number>, id: string, time: number): void {
  seen.delete(id);
  seen.set(id, time);
}
