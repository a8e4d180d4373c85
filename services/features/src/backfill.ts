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

/** An event the pipeline applies, with its source partition and the time it arrives (its partition's watermark then). */
type ArrivedEvent = SourceEvent & { partition: number; arrival: number };

/**
 * Step 1, the pipeline's decisions: which records are applied (per partition, in offset order),
 * and when each arrives; the counts of the others.
 */
function decisions(options: ReplayOptions) {
  const decode = sourceDecoder(options.source);
  const readAt = options.readAt ?? Date.now();
  const rejected = { late: 0, malformed: 0, invalid: 0 };
  const progress = new Map<number, PartitionProgress>();
  let admitted = 0;
  let duplicates = 0;
  return {
    /** The decoding of the next record of a partition, and the event to apply, if it is one. */
    decide(partition: number, record: LogRecord): { decoded: DecodeResult; applied?: ArrivedEvent } {
      const decoded = decode(record, readAt);
      if (!decoded.ok) {
        rejected[decoded.reason === 'malformed' ? 'malformed' : 'invalid']++;
        return { decoded };
      }
      let state = progress.get(partition);
      if (!state) progress.set(partition, (state = { watermark: -Infinity, seen: new Map() }));
      const admission = admitEvent(state, decoded.event, options.allowedLatenessMs);
      if (admission.verdict === 'late') rejected.late++;
      else if (admission.verdict === 'duplicate') duplicates++;
      else {
        admitted++;
        // Ids past the lateness count no more: the oldest are forgotten as the replay goes.
        pruneSeen(state.seen, state.watermark - options.allowedLatenessMs);
        return { decoded, applied: { ...decoded.event, partition, arrival: state.watermark } };
      }
      return { decoded };
    },
    /** A partition's watermark: no event of it read from now on arrives earlier. */
    watermark: (partition: number): number => progress.get(partition)?.watermark ?? -Infinity,
    counts: (): Omit<BackfillResult, 'rows'> => ({ accepted: admitted + duplicates, duplicates, rejected: { ...rejected } }),
  };
}

/**
 * Step 2, sweep time: each entity's state per source partition as the store holds it at the sweep's
 * time, the events arrived by then applied. The sweep moves forward only; a read merges an entity's
 * partitions as the store's read does.
 */
class Sweep {
  /** Each entity's state per source partition, by group and entity id. */
  private readonly states = new Map<string, Map<number, PartitionState>>();
  /** When each state was last pruned (sweep time). */
  private readonly prunedAt = new WeakMap<PartitionState, number>();
  /** The groups of `groups` fed by the replayed source, the only ones applied and read. */
  private readonly fed: CompiledFeatureGroup[];
  private readonly ttlOf: Map<string, number>;
  /** When the states were last walked for the entities whose keys have expired (sweep time). */
  private expiredAt = -Infinity;
  /** The sweep's time: the time of the query answered next. */
  at = -Infinity;

  constructor(
    readonly groups: CompiledFeatureGroup[],
    source: string,
  ) {
    this.fed = groups.filter((group) => group.definition.source === source);
    this.ttlOf = new Map(this.fed.map((group) => [group.id, group.ttlMs]));
  }

  /** Moves the sweep to a query's time (not before its own), before the events that arrived by then are applied. */
  moveTo(at: number): void {
    this.at = at;
    // Entities whose keys the store has let expire (a ttl after their last event) are forgotten, an hour of sweep
    // time apart: a group's ttl covers its windows and a tile more (definition.ts), so no read at or after this
    // time uses their tiles, and an event of theirs arriving later starts a state whose reads are those of the old
    // one and it.
    if (at - this.expiredAt < EXPIRY_WALK_MS) return;
    for (const [slot, shares] of this.states) {
      if (at - newestOf(shares) >= this.ttlOf.get(slot.slice(0, slot.indexOf('\u0000')))!) this.states.delete(slot);
    }
    this.expiredAt = at;
  }

  apply(event: ArrivedEvent): void {
    for (const group of this.fed) {
      const id = group.entityId(event.values);
      if (id === null) continue;
      const slot = `${group.id}\u0000${id}`;
      let shares = this.states.get(slot);
      if (!shares) this.states.set(slot, (shares = new Map()));
      let state = shares.get(event.partition);
      if (!state) shares.set(event.partition, (state = emptyState()));
      // As the pipeline does (at most once a minute of its time): tiles no read at or after the sweep's time can
      // use are dropped, so that a state holds its windows' tiles, not the whole replay's.
      if (this.at - (this.prunedAt.get(state) ?? -Infinity) >= PRUNE_INTERVAL_MS) {
        pruneState(group, state, this.at);
        this.prunedAt.set(state, this.at);
      }
      applyEvent(group, state, event);
    }
  }

  /** A query's row, read at the sweep's time (the query's). */
  read(query: FeatureQuery, keepStored: boolean): FeatureRow {
    const features: FeatureRow['features'] = {};
    const stored: NonNullable<FeatureRow['stored']> = {};
    for (const group of this.fed) {
      if (group.entity !== query.entity) continue;
      const shares = this.states.get(`${group.id}\u0000${query.id}`) ?? new Map<number, PartitionState>();
      // The store's keys expire a ttl after the entity's last event.
      let fields: Record<string, Buffer> | null = null;
      if (query.at - newestOf(shares) < group.ttlMs) {
        fields = {};
        for (const [partition, state] of shares) Object.assign(fields, stateFields(partition, state));
      }
      features[group.definition.name] = readFeatureValues(group, fields, query.at).values;
      if (keepStored) stored[group.definition.name] = fields;
    }
    return keepStored ? { ...query, features, stored } : { ...query, features };
  }
}

/** The queries with their places, in time order (the order of the input among equal times). */
const inTimeOrder = (queries: FeatureQuery[]) => queries.map((query, index) => ({ query, index })).sort((a, b) => a.query.at - b.query.at);

export function eventReplay(options: ReplayOptions): EventReplay {
  const decided = decisions(options);
  const applied: ArrivedEvent[] = [];
  let sweep: Sweep | null = null;
  /** The index in `applied` of the next event the sweep applies. */
  let next = 0;
  return {
    add(partition, record) {
      const { decoded, applied: event } = decided.decide(partition, record);
      if (event) {
        applied.push(event);
        sweep = null;
      }
      return decoded;
    },
    answer(allGroups, queries, keepStored = false) {
      // 2. Sweep time: apply the events arrived by each query's timestamp, then read as the store would.
      const order = inTimeOrder(queries);
      if (!sweep || sweep.groups !== allGroups || (order.length > 0 && order[0]!.query.at < sweep.at)) {
        applied.sort((a, b) => a.arrival - b.arrival);
        sweep = new Sweep(allGroups, options.source.name);
        next = 0;
      }
      const rows: FeatureRow[] = new Array(queries.length);
      for (const { query, index } of order) {
        sweep.moveTo(query.at);
        while (next < applied.length && applied[next]!.arrival <= query.at) sweep.apply(applied[next++]!);
        rows[index] = sweep.read(query, keepStored);
      }
      return { rows, ...decided.counts() };
    },
  };
}

export interface StreamedReplayOptions extends ReplayOptions {
  groups: CompiledFeatureGroup[];
  queries: FeatureQuery[];
  /** The source partitions the records come from: 0 to `partitions - 1`. */
  partitions: number;
  /** Also return each row's stored fields (`FeatureRow.stored`). */
  keepStored?: boolean;
}

/** A replay whose queries are known before its records: see `streamedReplay`. */
export interface StreamedReplay {
  /** The pipeline's decision on the next record of a partition (as `EventReplay.add`); returns its decoding. */
  add(partition: number, record: LogRecord): DecodeResult;
  /** The rows of every query (those not answered yet, from all the events added). */
  finish(): BackfillResult;
}

/**
 * The rows of queries known in advance, answered as the records are added: what `eventReplay`
 * answers, holding only the events that arrive after the next query's time in a partition ahead
 * of the others. A query is answered once every partition's watermark has passed its time (no
 * event arriving by then is still to come); the events arriving by a query's time are applied when
 * they are added, with the sweep at that query's time, as `eventReplay` applies them (each
 * partition's in order; partitions hold apart states, so their order among each other changes
 * nothing). A file's events (one partition) are applied as they are read: memory holds the states
 * and the rows, not the events.
 */
export function streamedReplay(options: StreamedReplayOptions): StreamedReplay {
  const decided = decisions(options);
  const keepStored = options.keepStored ?? false;
  const sweep = new Sweep(options.groups, options.source.name);
  const order = inTimeOrder(options.queries);
  const rows: FeatureRow[] = new Array(options.queries.length);
  /** The index in `order` of the next query to answer. */
  let next = 0;
  /** Per partition, its applied events that arrive after the next query's time, in order, from `head` on. */
  const waiting = Array.from({ length: options.partitions }, () => ({ events: [] as ArrivedEvent[], head: 0 }));
  const arrivesBy = (at: number) => (w: (typeof waiting)[number]) => w.head < w.events.length && w.events[w.head]!.arrival <= at;
  const frontier = (): number => {
    let low = Infinity;
    for (let p = 0; p < options.partitions; p++) low = Math.min(low, decided.watermark(p));
    return low;
  };
  /** Applies the events arrived by the next query's time, and answers the queries every partition is past. */
  const advance = (past: number): void => {
    while (next < order.length) {
      const { query, index } = order[next]!;
      const due = arrivesBy(query.at);
      if (waiting.some(due)) {
        sweep.moveTo(query.at);
        for (const w of waiting) {
          while (due(w)) sweep.apply(w.events[w.head++]!);
          // What was applied is let go of, a large part at a time (not an array shift per event).
          if (w.head === w.events.length) w.events.length = w.head = 0;
          else if (w.head >= 1024 && w.head * 2 >= w.events.length) {
            w.events.splice(0, w.head);
            w.head = 0;
          }
        }
      }
      if (!(query.at < past)) return;
      sweep.moveTo(query.at);
      rows[index] = sweep.read(query, keepStored);
      next++;
    }
    // Every query answered: later events are counted, not kept.
    for (const w of waiting) w.events.length = w.head = 0;
  };
  return {
    add(partition, record) {
      if (!Number.isInteger(partition) || partition < 0 || partition >= options.partitions) {
        throw new RangeError(`partition ${partition} is not one of the replay's ${options.partitions}`);
      }
      const { decoded, applied } = decided.decide(partition, record);
      if (applied && next < order.length) waiting[partition]!.events.push(applied);
      if (decoded.ok) advance(frontier());
      return decoded;
    },
    finish() {
      advance(Infinity);
      return { rows, ...decided.counts() };
    },
  };
}

/** A replay of records already at hand (a topic read into memory), answered at once. */
export function backfill(options: BackfillOptions): BackfillResult {
  const replay = streamedReplay({ ...options, partitions: options.partitions.length });
  options.partitions.forEach((records, partition) => {
    for (const record of records) replay.add(partition, record);
  });
  return replay.finish();
}
