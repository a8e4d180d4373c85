/**
 * A source partition's event-time rules (pure), the same in the pipeline and in every replay
 * (backfill, training sets), record by record in offset order:
 *
 * - The watermark is the highest of min(event time, time logged) over the partition's events
 *   so far (`SourceEvent.loggedAt`): an event cannot have happened after its record was logged,
 *   so a device clock ahead does not move the watermark past what the log vouches for (as
 *   Flink's and Kafka Streams' watermarks follow the source's timestamps).
 * - An event older than the watermark by more than the allowed lateness is late.
 */
import type { SourceEvent } from './decode.js';

export interface PartitionProgress {
  /** The highest of min(event time, time logged) so far; -Infinity before the first event. */
  watermark: number;
}

export type Admission = { verdict: 'admitted' } | { verdict: 'late'; detail: string };

/** The decision on an event of the partition (the next in offset order); moves its watermark. */
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
  return { verdict: 'admitted' };
}
