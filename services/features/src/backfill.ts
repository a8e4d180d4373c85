/**
 * Offline backfill: point-in-time-correct feature rows from a replay of the event log,
 * through the same decoding, watermark and duplicate rules (watermark.ts) and aggregation
 * code as the pipeline. Each row holds what the online store returns at the row's timestamp
 * when the pipeline keeps up with the stream: the events the pipeline applies (not malformed,
 * invalid, late for their partition's watermark, nor a duplicate) that had arrived by then. A
 * record arrives when its partition's watermark reaches it: at the watermark just after it
 * (so an event delayed behind later ones is seen only when it arrives, and an event ahead of
 * the time its record was logged arrives at that time, as the pipeline reads it then). The
 * store's read then counts it as the pipeline's does: with the whole tile it falls in.
 */
import {
  applyEvent,
  emptyState,
  pruneSeen,
  pruneState,
  PRUNE_INTERVAL_MS,
  readFeatureValues,
  stateFields,
  type CompiledFeatureGroup,
  type EventSource,
  type LogRecord,
  type PartitionState,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import { sourceDecoder, type DecodeResult, type SourceEvent } from './decode.js';
import { admitEvent, type PartitionProgress } from './watermark.js';

/** How often (in sweep time) the states are walked for expired entities. */
const EXPIRY_WALK_MS = 3_600_000;

export interface FeatureQuery {
  /** Entity type, e.g. `user_id`. */
  entity: string;
  id: string;
  /** Epoch ms: the events arrived at or before it count (an event at exactly `at` included; `at - 1` leaves it out). */
  at: number;
}

export interface FeatureRow extends FeatureQuery {
  /** Feature values by group name, then feature name. */
  features: Record<string, Record<string, number | string | null>>;
  /**
   * With `keepStored`: by group name, the fields an online-store read returns at `at` (null
   * when the entity has no live key), for callers that assemble vectors with the serving code.
   */
  stored?: Record<string, Record<string, string | Buffer> | null>;
}

export interface ReplayOptions {
  /** The source replayed; of the groups given to `answer`, those fed by it answer the queries. */
  source: EventSource & { schema: TSchema };
  allowedLatenessMs: number;
  /**
   * Epoch ms: when the records are read (now, by default). A record without a log timestamp (an
   * events file's line), or with one later than this, counts as logged at this time (decode.ts).
   */
  readAt?: number;
}

export interface BackfillOptions extends ReplayOptions {
  groups: CompiledFeatureGroup[];
  /** Each partition's records in offset order. */
  partitions: Iterable<LogRecord>[];
  queries: FeatureQuery[];
  /** Also return each row's stored fields (`FeatureRow.stored`). */
  keepStored?: boolean;
}

export interface BackfillResult {
  rows: FeatureRow[];
  /** Events neither malformed, invalid nor late. */
  accepted: number;
  /** Of the accepted events, those not applied as copies of an earlier one of their partition (watermark.ts). */
  duplicates: number;
  rejected: { late: number; malformed: number; invalid: number };
}

/**
 * Why a replay is no result: none of the events given could be applied (another topic's
 * records, a damaged file, every one late, an empty input), so every feature of the source
 * would be at its default in every row. Null when some could.
 */
export function unusableEvents(replay: Pick<BackfillResult, 'accepted' | 'rejected'>, what: string): string | null {
  const { malformed, invalid, late } = replay.rejected;
  if (replay.accepted > 0) return null;
  if (malformed + invalid + late === 0) return `no ${what} were given: their features would be their defaults in every row`;
  return `none of the ${malformed + invalid + late} ${what} could be applied (${late} late, ${invalid} invalid, ${malformed} malformed): their features would be their defaults in every row`;
}

/**
 * A replay of one source, fed one record at a time (a file is read as a stream, never whole).
 * The applied events (accepted, not duplicates) are kept, parsed rather than as their records:
 * the queries come in any order, so the sweep of step 2 needs every one, in order of arrival.
 */
export interface EventReplay {
  /**
   * 1. The pipeline's decision on the next record of a partition (each partition's records in
   * offset order; the partitions' may come interleaved: each has its own state, and a read
   * merges them in partition order); returns its decoding.
   */
  add(partition: number, record: LogRecord): DecodeResult;
  /**
   * 2. The rows of the queries, from the events added so far. The sweep stays where it stopped:
   * a call with the same groups whose queries are none earlier than the previous call's goes on
   * from there (queries answered a part at a time, in time order, cost one sweep in all); any
   * other call sweeps again from the first event.
   */
  answer(groups: CompiledFeatureGroup[], queries: FeatureQuery[], keepStored?: boolean): BackfillResult;
}

/** The newest event time of an entity's states (its partitions' shares), -Infinity when none has one. */
function newestOf(shares: Map<number, PartitionState>): number {
  let newest = -Infinity;
  for (const state of shares.values()) if (state.newest !== null && state.newest > newest) newest = state.newest;
  return newest;
}

/** Step 2's sweep: the events applied so far (in order of arrival) and each entity's state they made. */
interface Sweep {
  groups: CompiledFeatureGroup[];
  /** The groups fed by the replayed source. */
  fed: CompiledFeatureGroup[];
  /** Each entity's state per source partition, as the store holds it: a read merges them as it merges the store's. */
  states: Map<string, Map<number, PartitionState>>;
  /** When each state was last pruned (sweep time). */
  prunedAt: WeakMap<PartitionState, number>;
  /** When the states were last walked for the entities whose keys have expired (sweep time). */
  expiredAt: number;
  /** The index of the next event to apply. */
  next: number;
  /** The latest query answered. */
  at: number;
}

export function eventReplay(options: ReplayOptions): EventReplay {
  const decode = sourceDecoder(options.source);
  const readAt = options.readAt ?? Date.now();
  // 1. The pipeline's decisions: which records are applied (per partition, in offset order), and when each arrives.
  const applied: (SourceEvent & { partition: number; arrival: number })[] = [];
  const rejected = { late: 0, malformed: 0, invalid: 0 };
  const progress = new Map<number, PartitionProgress>();
  let duplicates = 0;
  let sweep: Sweep | null = null;
  return {
    add(partition, record) {
      const decoded = decode(record, readAt);
      if (!decoded.ok) {
        rejected[decoded.reason === 'malformed' ? 'malformed' : 'invalid']++;
        return decoded;
      }
      let state = progress.get(partition);
      if (!state) progress.set(partition, (state = { watermark: -Infinity, seen: new Map() }));
      const admission = admitEvent(state, decoded.event, options.allowedLatenessMs);
      if (admission.verdict === 'late') rejected.late++;
      else if (admission.verdict === 'duplicate') duplicates++;
      else {
        applied.push({ ...decoded.event, partition, arrival: state.watermark });
        sweep = null;
        // Ids past the lateness count no more: the oldest are forgotten as the replay goes.
        pruneSeen(state.seen, state.watermark - options.allowedLatenessMs);
      }
      return decoded;
    },
    answer(allGroups, queries, keepStored = false) {
      // 2. Sweep time: apply the events arrived by each query's timestamp, then read as the store would.
      const order = queries.map((query, index) => ({ query, index })).sort((a, b) => a.query.at - b.query.at);
      if (!sweep || sweep.groups !== allGroups || (order.length > 0 && order[0]!.query.at < sweep.at)) {
        applied.sort((a, b) => a.arrival - b.arrival);
        const fed = allGroups.filter((g) => g.definition.source === options.source.name);
        sweep = { groups: allGroups, fed, states: new Map(), prunedAt: new WeakMap(), expiredAt: -Infinity, next: 0, at: -Infinity };
      }
      const { fed: groups, states, prunedAt } = sweep;
      const rows: FeatureRow[] = new Array(queries.length);
      const ttlOf = new Map(groups.map((group) => [group.id, group.ttlMs]));
      for (const { query, index } of order) {
        sweep.at = query.at;
        // Entities whose keys the store has let expire (a ttl after their last event) are forgotten, an hour of sweep
        // time apart: a group's ttl covers its windows and a tile more (definition.ts), so no read at or after this
        // time uses their tiles, and an event of theirs arriving later starts a state whose reads are those of the old
        // one and it.
        if (query.at - sweep.expiredAt >= EXPIRY_WALK_MS) {
          for (const [slot, shares] of states) {
            if (query.at - newestOf(shares) >= ttlOf.get(slot.slice(0, slot.indexOf('\u0000')))!) states.delete(slot);
          }
          sweep.expiredAt = query.at;
        }
        while (sweep.next < applied.length && applied[sweep.next]!.arrival <= query.at) {
          const event = applied[sweep.next++]!;
          for (const group of groups) {
            const id = group.entityId(event.values);
            if (id === null) continue;
            const slot = `${group.id}\u0000${id}`;
            let shares = states.get(slot);
            if (!shares) states.set(slot, (shares = new Map()));
            let state = shares.get(event.partition);
            if (!state) shares.set(event.partition, (state = emptyState()));
            // As the pipeline does (at most once a minute of its time): tiles no read at or after this query's
            // time can use are dropped, so that a state holds its windows' tiles, not the whole replay's.
            if (query.at - (prunedAt.get(state) ?? -Infinity) >= PRUNE_INTERVAL_MS) {
              pruneState(group, state, query.at);
              prunedAt.set(state, query.at);
            }
            applyEvent(group, state, event);
          }
        }
        const features: FeatureRow['features'] = {};
        const stored: NonNullable<FeatureRow['stored']> = {};
        for (const group of groups) {
          if (group.entity !== query.entity) continue;
          const shares = states.get(`${group.id}\u0000${query.id}`) ?? new Map<number, PartitionState>();
          // The store's keys expire a ttl after the entity's last event.
          let fields: Record<string, Buffer> | null = null;
          if (query.at - newestOf(shares) < group.ttlMs) {
            fields = {};
            for (const [partition, state] of shares) Object.assign(fields, stateFields(partition, state));
          }
          features[group.definition.name] = readFeatureValues(group, fields, query.at).values;
          if (keepStored) stored[group.definition.name] = fields;
        }
        rows[index] = keepStored ? { ...query, features, stored } : { ...query, features };
      }
      return { rows, accepted: applied.length + duplicates, duplicates, rejected: { ...rejected } };
    },
  };
}

/** A replay of records already at hand (a topic read into memory), answered at once. */
export function backfill(options: BackfillOptions): BackfillResult {
  const replay = eventReplay(options);
  options.partitions.forEach((records, partition) => {
    for (const record of records) replay.add(partition, record);
  });
  return replay.answer(options.groups, options.queries, options.keepStored);
}
