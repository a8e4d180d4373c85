/**
 * Candidates from the event log: each event of the scored source (a transaction) stands for
 * the prediction request made for it, as the simulator makes them: request id = the event
 * id, entities and request-time fields = the event's fields of those names, time = when it
 * was scored: its event time, or the time its record was logged when that is earlier (a
 * device clock ahead; online, a transaction is scored before its event is published, so at
 * the latest then, and read at its event time it would count in its own features). The input is read in one pass, each record decided on by the source's replay
 * (which keeps the accepted events for the features), so that a file is read once for both.
 */
import type { EventReplay } from '@tributary/features';
import { byPartition, where, type LogInput } from './log-input.js';
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
  const rejected: { partition: number; item: RejectedRecord }[] = [];
  const kept = new Map<string, EventCandidate & { partition: number }>();
  for await (const record of input.records) {
    const { partition } = record;
    stats.events++;
    const decoded = replay.add(partition, record);
    if (!decoded.ok) {
      rejected.push({ partition, item: { where: where(input, record), detail: `${decoded.reason}: ${decoded.detail}` } });
      continue;
    }
    const { id, values } = decoded.event;
    const time = Math.min(decoded.event.time, decoded.event.loggedAt);
    const first = kept.get(id);
    if (first) stats.duplicates++;
    // Each partition's records come in offset order: the first is an earlier partition's.
    if (first && first.partition <= partition) continue;
    const entities: Record<string, string> = {};
    for (const field of options.entityFields) if (typeof values[field] === 'string') entities[field] = values[field];
    const request: Record<string, unknown> = {};
    for (const field of options.requestFields) if (values[field] !== undefined) request[field] = values[field];
    kept.set(id, { request_id: id, time, entities, request, partition });
  }
  return { candidates: [...kept.values()], stats, rejected: byPartition(rejected) };
}
