/**
 * Point-in-time feature vectors offline, equal to the ones the inference service assembles
 * online: the stored state of each feature group comes from the backfill of the feature
 * engine (services/features: the pipeline's decoding, lateness rule and aggregation), and
 * the vector is assembled by the serving code (`assembleVector`: windows read at the
 * request's time, on-demand features, defaults, the model's order).
 *
 * A request at time `at` sees the events that arrived strictly before `at`: the transaction
 * being scored, whose event carries that very time, is not in its own features, as online,
 * where a transaction is scored before its event is published.
 */
import { eventReplay, type EventReplay } from '@tributary/features';
import {
  assembleVector,
  type AssembledVector,
  type CompiledFeatureGroup,
  type EventSource,
  type FeaturePlan,
  type OnlineStore,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import type { LogInput } from './log-input.js';

export class FeatureSourceError extends Error {
  override name = 'FeatureSourceError';
}

export interface VectorQuery {
  entities: Record<string, string>;
  /** Request-time fields, as a prediction request carries them. */
  request: Record<string, unknown>;
  /** Epoch ms. */
  at: number;
}

/** Where stored feature-group state comes from: the backfill of an event log, or an online store. */
export interface StateSource {
  /** For each query, the stored fields of each of the plan's groups (null when the entity has none). */
  states(plan: FeaturePlan, queries: VectorQuery[]): Promise<(Record<string, string | Buffer> | null)[][]>;
}

export interface ReplaySummary {
  source: string;
  accepted: number;
  /** Of the accepted, copies of an earlier event of their partition, not applied (features/src/watermark.ts). */
  duplicates: number;
  rejected: { late: number; malformed: number; invalid: number };
}

export interface ReplayOptions {
  sources: (EventSource & { schema: TSchema })[];
  allowedLatenessMs: number;
  /** When records without a log timestamp (an events file's) were read: their events far after it are invalid. */
  readAt?: number;
}

/**
 * The replay of each source's events (by source name), each input read in one pass: the
 * pipeline's decisions made record by record, the accepted events kept, parsed, for the
 * point-in-time reads (they are swept in time order, so every one of them is needed).
 */
export async function replaySources(events: Map<string, LogInput>, options: ReplayOptions): Promise<Map<string, EventReplay>> {
  const replays = new Map<string, EventReplay>();
  for (const [name, input] of events) {
    const source = options.sources.find((s) => s.name === name);
    if (!source) continue;
    const replay = eventReplay({ source, allowedLatenessMs: options.allowedLatenessMs, readAt: options.readAt });
    for await (const record of input.records) replay.add(record.partition, record);
    replays.set(name, replay);
  }
  return replays;
}

/**
 * Stored state as of each query's time, answered by the replays of the sources' events. Queries
 * asked a part at a time, in time order, are answered by one sweep of each replay, going on
 * from part to part. `summaries` holds each source's replay once a part is answered.
 */
export function backfillStates(
  replays: Map<string, EventReplay>,
  groups: CompiledFeatureGroup[],
): StateSource & { summaries: ReplaySummary[] } {
  const summaries: ReplaySummary[] = [];
  return {
    summaries,
    async states(plan, queries) {
      const result = queries.map(() => plan.groups.map((): Record<string, string | Buffer> | null => null));
      const bySource = new Map<string, number[]>();
      plan.groups.forEach((group, g) => bySource.set(group.definition.source, [...(bySource.get(group.definition.source) ?? []), g]));
      for (const [sourceName, groupIndexes] of bySource) {
        const events = replays.get(sourceName);
        if (!events) {
          const names = groupIndexes.map((g) => plan.groups[g]!.definition.name).join(', ');
          throw new FeatureSourceError(`the model reads feature group(s) ${names}, fed by source "${sourceName}": give its events`);
        }
        // One backfill query per distinct (entity, id, time); "strictly before at" is "at or before at - 1" in whole ms.
        const index = new Map<string, number>();
        const unique: { entity: string; id: string; at: number }[] = [];
        const slots = queries.map((query) =>
          groupIndexes.map((g) => {
            const group = plan.groups[g]!;
            const id = group.entityId(query.entities);
            if (id === null) return -1;
            const key = `${group.entity}\u0000${id}\u0000${query.at}`;
            let slot = index.get(key);
            if (slot === undefined) {
              slot = unique.push({ entity: group.entity, id, at: query.at - 1 }) - 1;
              index.set(key, slot);
            }
            return slot;
          }),
        );
        const replay = events.answer(groups, unique, true);
        const summary = { source: sourceName, accepted: replay.accepted, duplicates: replay.duplicates, rejected: replay.rejected };
        const known = summaries.findIndex((s) => s.source === sourceName);
        if (known < 0) summaries.push(summary);
        else summaries[known] = summary;
        slots.forEach((row, q) =>
          row.forEach((slot, k) => {
            if (slot < 0) return;
            const g = groupIndexes[k]!;
            result[q]![g] = replay.rows[slot]!.stored?.[plan.groups[g]!.definition.name] ?? null;
          }),
        );
      }
      return result;
    },
  };
}

/** Stored state read from an online store now (the queries' times are not used for the read). */
export function onlineStates(store: Pick<OnlineStore, 'read'>, where = 'the online store'): StateSource {
  return {
    async states(plan, queries) {
      const keys = queries.flatMap((query) =>
        plan.groups.map((group) => {
          const id = group.entityId(query.entities);
          if (id === null)
            throw new FeatureSourceError(`a request lacks the ${group.entityFields.join(', ')} of feature group ${group.definition.name}`);
          return { group: group.id, entity: group.entity, id };
        }),
      );
      const states =
        keys.length > 0
          ? await store.read(keys).catch((error: unknown) => {
              throw new Error(`${where} did not answer: ${(error as Error).message}`);
            })
          : [];
      const width = plan.groups.length;
      return queries.map((_, q) => states.slice(q * width, (q + 1) * width));
    },
  };
}

/** The vectors of the queries, assembled by the serving code at each query's time. */
export async function assembleVectors(plan: FeaturePlan, source: StateSource, queries: VectorQuery[]): Promise<AssembledVector[]> {
  const states = await source.states(plan, queries);
  return queries.map((query, q) => assembleVector(plan, states[q]!, query.request, query.at, false));
}
