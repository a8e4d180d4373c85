/**
 * Candidates from the event log: each event of the scored source (a transaction) stands for
 * the prediction request made for it, as the simulator makes them: request id = the event
 * id, entities and request-time fields = the event's fields of those names, time = its
 * event time. The input is read in one pass, each record decided on by the source's replay
 * (which keeps the accepted events for the features), so that a file is read once for both.
 */
import type { EventReplay } from '@tributary/features';
import { where, type LogInput } from './log-input.js';
import type { Candidate, RejectedRecord } from './training-set.js';

export interface EventCandidate extends Candidate {
  entities: Record<string, string>;
  request: Record<string, unknown>;
}

export interface EventCandidateOptions {
  /** Entity key fields a request names. */
  entityFields: string[];
  /** Request-time fields a request carries. */
  requestFields: string[];
}

export interface EventStats {
  events: number;
  /** Events whose id was seen before (the first is kept, as the pipeline does). */
  duplicates: number;
}

export async function eventCandidates(
  input: LogInput,
  replay: EventReplay,
  options: EventCandidateOptions,
): Promise<{ candidates: EventCandidate[]; stats: EventStats; rejected: RejectedRecord[] }> {
  const stats: EventStats = { events: 0, duplicates: 0 };
  const rejected: RejectedRecord[] = [];
  const seen = new Set<string>();
  const candidates: EventCandidate[] = [];
  for (const [partition, records] of input.partitions.entries()) {
    for await (const record of records) {
      stats.events++;
      const decoded = replay.add(partition, record);
      if (!decoded.ok) {
        rejected.push({ where: where(input, record), detail: `${decoded.reason}: ${decoded.detail}` });
        continue;
      }
      const { id, time, values } = decoded.event;
      if (seen.has(id)) {
        stats.duplicates++;
        continue;
      }
      seen.add(id);
      const entities: Record<string, string> = {};
      for (const field of options.entityFields) if (typeof values[field] === 'string') entities[field] = values[field];
      const request: Record<string, unknown> = {};
      for (const field of options.requestFields) if (values[field] !== undefined) request[field] = values[field];
      candidates.push({ request_id: id, time, entities, request });
    }
  }
  return { candidates, stats, rejected };
}
