/**
 * The pipeline's keyed state (Kafka Streams' state store with a record cache): events of
 * each source partition update, in the process, that partition's share of every touched
 * entity's feature-group state; `flush` writes the changed entities to the online store in
 * one round trip, as absolute values with the partition offset they include, and returns
 * the offsets (and watermarks) that are then safe to commit.
 *
 * Exactly once: an entity's stored state records the highest source offset it includes.
 * After a crash the partition is consumed again from its committed offset; each entity's
 * state is loaded from the store and events at or below its stored offset are skipped,
 * so whatever was written before the crash is never applied twice. Late-event decisions
 * depend on the partition's watermark, which is committed with the offset and restored,
 * so a replay takes the same decisions as the run that crashed.
 *
 * Late events and duplicates are decided by the partition's watermark and recent ids
 * (watermark.ts), the same rules as every replay's. The partition's recent
 * ids live in the process and in the store's event-id log of the partition, to which each
 * flush adds one chunk (the ids it made durable) after its state writes and before its
 * offsets are committed. After a crash, the log holds the ids of every event before the
 * committed offset, and the replay from there adds those after it again (events the stored
 * states already include count as seen), so no id is missed; nothing about ids is rewritten
 * per entity, and reads of features never see them.
 */
import v8 from 'node:v8';
import {
  applyEvent,
  emptyState,
  parsePartitionState,
  pruneSeen,
  pruneState,
  PRUNE_INTERVAL_MS,
  stateField,
  stateFields,
  storedOffset,
  type CompiledFeatureGroup,
  type DeadLetterReason,
  type EventIdChunk,
  type EventIdLogWrite,
  type EventSource,
  type LogRecord,
  type OffsetCommit,
  type OnlineStore,
  type OutgoingRecord,
  type PartitionState,
  type RecordBatch,
  type StateWrite,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import { sourceDecoder, type DecodeResult } from './decode.js';
import { admitEvent, recordId } from './watermark.js';

export interface RejectedRecord {
  record: LogRecord;
  reason: DeadLetterReason;
  detail: string;
}

export interface BatchOutcome {
  /** Events applied to at least one feature group. */
  applied: number;
  /** Events the store already included (a replay after a restart). */
  replayed: number;
  /** Events whose id was seen before. */
  duplicates: number;
  rejected: RejectedRecord[];
}

export interface FlushOutcome {
  /** Entities written. */
  written: number;
  /** Entities refused by the store because a newer state was there (this process lost the partition). */
  fenced: number;
  /** Entities refused by the store because their key holds something else (`unwritableState` was told). */
  unwritable: number;
  /** Offsets to commit, with the watermark as metadata. */
  commits: OffsetCommit[];
  /** Event times of the events that became readable with this flush. */
  eventTimes: number[];
}

/** Where a partition stands: its last record processed (null: none since it was opened) and its watermark. */
export interface Checkpoint {
  lastOffset: bigint | null;
  watermark: number;
}

/** Dead letters of a partition that could not be published (see `withhold`). */
export interface WithheldDeadLetters {
  topic: string;
  partition: number;
  /** Those still to publish. */
  letters: OutgoingRecord[];
  /** Where the partition stood before the batch that made them: its commits go no further. */
  before: Checkpoint;
}

export interface FeatureProcessorOptions {
  store: OnlineStore;
  /** The source consumed; of `groups`, those fed by it are maintained. */
  source: EventSource & { schema: TSchema };
  groups: CompiledFeatureGroup[];
  allowedLatenessMs: number;
  clock?: () => number;
  /**
   * Heap for the entity states kept in memory between their events, estimated from their stored
   * size (`HEAP_BYTES_PER_STORED_BYTE`). When a flush leaves more, the least recently loaded
   * clean entities are forgotten: their next event reads them from the store again. Dirty ones
   * are always kept until written. Default: `DEFAULT_CACHE_BYTES`.
   */
  cacheBytes?: number;
  /**
   * The caller commits the flushes' offsets elsewhere (Kafka) and says which commits were accepted
   * (`committed`): the event-id logs then keep the ids a replay from the last accepted commit
   * needs. Without it (backfills, training sets), a flush counts as committed once written.
   */
  confirmsCommits?: boolean;
  /**
   * Told of a stored state that cannot be read (a value damaged or written by something else): the
   * entity's share starts over from no events rather than stop its partition (reads already serve
   * its defaults). Its offset still fences the writes.
   */
  unreadableState?: (entity: string, reason: string) => void;
  /**
   * Told of a state the store refused to write because its key holds something else (a value of
   * another type, written by something else): the key is left as it is, the rest of the flush is
   * written and its offsets committed; the entity stays in the process and every flush writes it
   * again until the key is cleared. Told once until one of its writes succeeds.
   */
  unwritableState?: (entity: string, reason: string) => void;
}

/**
 * Heap that an entity's state takes in the process per byte of its stored value: tiles are maps
 * of column states, with a boxed number per double field. Measured 7.6-8.7 for user states of
 * 463 to 4,221 stored bytes (3.95 to 32 KB of heap), 8.2-10.4 before the sketches' exact arrays
 * (docs/feature-engine.md): the estimate errs high.
 */
const HEAP_BYTES_PER_STORED_BYTE = 10;
/** An entity's own objects beside its tiles (the cache entry, its state, its maps' slots). */
const ENTITY_OVERHEAD_BYTES = 400;
/** A quarter of V8's heap limit (1 GB of the 4 GB a 64-bit Node gives by default). */
export const DEFAULT_CACHE_BYTES = Math.floor(v8.getHeapStatistics().heap_size_limit / 4);

const heapEstimate = (storedBytes: number) => ENTITY_OVERHEAD_BYTES + storedBytes * HEAP_BYTES_PER_STORED_BYTE;

export interface CacheStats {
  /** Entities whose state is in memory. */
  entities: number;
  /** Their estimated heap, bytes. */
  bytes: number;
  /** Clean entities forgotten to keep within the budget, since the processor was made. */
  evicted: number;
}

interface CachedEntity {
  group: CompiledFeatureGroup;
  /** Index of its group in the processor's groups. */
  g: number;
  id: string;
  state: PartitionState;
  /** Highest source offset the stored state includes. */
  storedOffset: bigint;
  /** Changed since its state was last encoded for a write (then it is in its partition's `dirty`). */
  dirty: boolean;
  /** The time (the clock, or the partition's event time when it is behind) its expired tiles were last removed at. */
  prunedAt: number;
  /** Estimated heap of its state (from its size when last loaded or written). */
  heapBytes: number;
  /** Its last write was refused: its key holds something else (reported once until a write succeeds). */
  unwritable?: true;
}

interface Partition {
  topic: string;
  partition: number;
  /** The highest of min(event time, time logged) so far (see watermark.ts). */
  watermark: number;
  /**
   * The watermark of the partition's last committed offset: a replay after a crash starts from
   * it, so the event-id log keeps every id within the allowed lateness of it (see `committed`).
   */
  committedWatermark: number;
  /**
   * The partition's committed offset when it was opened: every record before it is durable, its
   * effect stored and its watermark in the checkpoint. Such a record reaches `apply` only in a batch
   * begun before a rebalance whose partition was opened again after it; it is skipped as replayed
   * (judged against the newer watermark it would be dead-lettered as late, and it would move the
   * offset to commit backwards).
   */
  committedOffset: bigint;
  /** Offset of the last record processed. */
  lastOffset: bigint | null;
  /** The next offset of the last commit accepted (at first the one it was opened at): a flush commits beyond it. */
  acceptedOffset: bigint;
  /** Dead letters of its records that could not be published yet: its commits stop before their batch. */
  withheld: WithheldDeadLetters | null;
  /** The cached entities of each group (same order as the processor's groups), by id, least recently loaded first. */
  entities: Map<string, CachedEntity>[];
  /** Their estimated heap. */
  heapBytes: number;
  /** The entities changed since the last flush (a flush writes these, not every cached one). */
  dirty: CachedEntity[];
  eventTimes: number[];
  /**
   * Recent event ids admitted (applied, or found applied) and their event times, in arrival order; loaded from the
   * log first. Those older than the watermark minus the lateness no longer count (watermark.ts): forgetting them
   * (at flushes) changes no decision.
   */
  seen: Map<string, number>;
  seenLoaded: Promise<void> | null;
  /** Ids added to `seen` since the last flush: the next chunk of the log. */
  unloggedIds: [string, number][];
  /** The log's chunks, with their newest event time (a chunk goes once all its ids are too old). */
  chunks: { name: string; newest: number }[];
  /** When `seen` was last pruned in full. */
  seenPrunedAt: number;
  /**
   * A write of one of its entities was refused (a newer state was stored): another member owns it
   * now, or did while this one went on. Its state here is dropped and nothing of it is written or
   * committed any more; its batches fail (`PartitionLost`) until it is opened again from its commit.
   */
  lost: boolean;
}

/** A batch of a partition this process lost (see `Partition.lost`): consumption must resume from the partition's commit. */
export class PartitionLost extends Error {
  override name = 'PartitionLost';
  constructor(partition: { topic: string; partition: number }) {
    super(
      `partition ${partition.topic}:${partition.partition} was lost: a newer state of one of its entities was stored by another member; ` +
        'it is consumed again from its committed offset',
    );
  }
}

const eventIdLog = (partition: { topic: string; partition: number }) => `${partition.topic}:${partition.partition}`;

/** A decoded batch with every entity it touches (see `load`). */
export interface LoadedBatch {
  batch: RecordBatch;
  partition: Partition;
  decoded: DecodeResult[];
  entities: Map<string, CachedEntity>[];
}

/** The watermark committed with a partition's offset. */
export function encodeCheckpoint(watermark: number): string {
  return JSON.stringify({ watermark: Number.isFinite(watermark) ? watermark : null });
}

export function decodeCheckpoint(metadata: string | null): number {
  if (!metadata) return -Infinity;
  try {
    const value = (JSON.parse(metadata) as { watermark?: unknown }).watermark;
    return typeof value === 'number' ? value : -Infinity;
  } catch {
    return -Infinity;
  }
}

export function createFeatureProcessor(options: FeatureProcessorOptions) {
  const clock = options.clock ?? Date.now;
  const decode = sourceDecoder(options.source);
  const groups = options.groups.filter((g) => g.definition.source === options.source.name);
  const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  let evicted = 0;
  /** The event-id log lives as long as the longest-lived state it protects. */
  const maxTtlMs = Math.max(...groups.map((g) => g.ttlMs));
  const partitions = new Map<string, Partition>();
  /** Settles when the last flush's write has completed. */
  let inFlight: Promise<unknown> = Promise.resolve();
  /**
   * Failed writes so far. A failed write marks its entities changed again for the next
   * flush, so a flush encoded before that is incomplete: it fails as well (it must not
   * commit offsets whose changes are not all written).
   */
  let failures = 0;

  /** Keeps an entity in its partition's cache (it was loaded, or held by a batch while it was forgotten). */
  const cache = (partition: Partition, entity: CachedEntity): void => {
    partition.entities[entity.g]!.set(entity.id, entity);
    partition.heapBytes += entity.heapBytes;
  };

  /** Forgets an entity (the store has its state, or another member owns it now). */
  const forget = (partition: Partition, entity: CachedEntity): void => {
    const entities = partition.entities[entity.g]!;
    if (entities.get(entity.id) !== entity) return;
    entities.delete(entity.id);
    partition.heapBytes -= entity.heapBytes;
  };

  /** Forgets the least recently loaded clean entities while the cache holds more than its budget. */
  const evictBeyondBudget = (): void => {
    let total = 0;
    for (const partition of partitions.values()) total += partition.heapBytes;
    if (total <= cacheBytes) return;
    for (const partition of partitions.values()) {
      // Each partition gives up its share of the excess.
      let excess = ((total - cacheBytes) * partition.heapBytes) / total;
      for (const entities of partition.entities) {
        for (const entity of entities.values()) {
          if (excess <= 0) break;
          if (entity.dirty) continue;
          forget(partition, entity);
          excess -= entity.heapBytes;
          evicted++;
        }
      }
    }
  };

  /** Drops a lost partition's state: none of it is written or committed any more (see `Partition.lost`). */
  const lose = (partition: Partition): void => {
    partition.lost = true;
    for (const entities of partition.entities) entities.clear();
    partition.heapBytes = 0;
    partition.dirty = [];
    partition.eventTimes = [];
    partition.seen.clear();
    partition.unloggedIds = [];
  };

  /**
   * Records offsets as committed: their watermarks bound what later flushes remove from the event-id logs, and
   * later flushes commit only beyond them (a refused commit is made again by the next flush, even of an idle partition).
   */
  const committed = (commits: OffsetCommit[]): void => {
    for (const commit of commits) {
      const partition = partitions.get(`${commit.topic}:${commit.partition}`);
      if (!partition) continue;
      const watermark = decodeCheckpoint(commit.metadata ?? null);
      if (watermark > partition.committedWatermark) partition.committedWatermark = watermark;
      const offset = BigInt(commit.offset);
      if (offset > partition.acceptedOffset) partition.acceptedOffset = offset;
    }
  };

  /** Marks an entity changed: the partition's next flush writes it. */
  const markDirty = (partition: Partition, entity: CachedEntity): void => {
    if (entity.dirty) return;
    entity.dirty = true;
    partition.dirty.push(entity);
  };

  /** Marks an event id as applied in the partition (to be logged by the next flush). */
  const see = (partition: Partition, id: string, time: number): void => {
    recordId(partition.seen, id, time);
    partition.unloggedIds.push([id, time]);
  };

  /** Reads the partition's event-id log into `seen`: the ids within the allowed lateness of its watermark. */
  async function loadSeen(partition: Partition): Promise<void> {
    const chunks = await options.store.readEventIds(eventIdLog(partition));
    const dedupBefore = partition.watermark - options.allowedLatenessMs;
    const ids: [string, number][] = [];
    for (const chunk of chunks) {
      let newest = -Infinity;
      for (const [id, time] of chunk.ids) {
        if (time > newest) newest = time;
        if (time >= dedupBefore) ids.push([id, time]);
      }
      partition.chunks.push({ name: chunk.name, newest });
    }
    ids.sort((a, b) => a[1] - b[1]);
    const loaded = new Map(ids);
    // Ids seen while the log was read (those of entity states written by an earlier version) stay.
    for (const [id, time] of partition.seen) loaded.set(id, time);
    partition.seen = loaded;
  }

  /**
   * What a flush writes to the partition's event-id log: the ids seen since the last flush as
   * a new chunk, and the removal of chunks whose ids are all older than the allowed lateness of
   * the last committed watermark (a replay from that commit still needs the younger ones, even
   * when the watermark has moved on since). Forgets the ids older than the allowed lateness of
   * the current watermark in memory (from the oldest on, in full once a minute).
   */
  function eventIdLogWrite(partition: Partition, dedupBefore: number, now: number) {
    if (now - partition.seenPrunedAt >= PRUNE_INTERVAL_MS) {
      for (const [id, time] of partition.seen) if (time < dedupBefore) partition.seen.delete(id);
      partition.seenPrunedAt = now;
    } else {
      pruneSeen(partition.seen, dedupBefore);
    }
    const keepFrom = Math.min(dedupBefore, partition.committedWatermark - options.allowedLatenessMs);
    const removed = partition.chunks.filter((chunk) => chunk.newest < keepFrom);
    let add: EventIdChunk | null = null;
    // Ids already too old (found in a replay, or in a state of an earlier version) need no logging.
    const ids = partition.unloggedIds.filter(([, time]) => time >= dedupBefore);
    partition.unloggedIds = [];
    if (ids.length > 0) {
      const newest = ids.reduce((max, [, time]) => (time > max ? time : max), -Infinity);
      add = { name: `${newest}:${partition.lastOffset}`, ids };
      partition.chunks.push({ name: add.name, newest });
    }
    if (!add && removed.length === 0) return null;
    partition.chunks = partition.chunks.filter((chunk) => chunk.newest >= keepFrom);
    const write: EventIdLogWrite = { log: eventIdLog(partition), add, remove: removed.map((chunk) => chunk.name), ttlMs: maxTtlMs };
    return { write, removed };
  }

  const keyOf = (entry: { group: CompiledFeatureGroup; id: string }) => ({
    group: entry.group.id,
    entity: entry.group.entity,
    id: entry.id,
  });

  return {
    /** The entities kept in memory and their estimated heap. */
    cacheStats(): CacheStats {
      const stats: CacheStats = { entities: 0, bytes: 0, evicted };
      for (const partition of partitions.values()) {
        for (const entities of partition.entities) stats.entities += entities.size;
        stats.bytes += partition.heapBytes;
      }
      return stats;
    },

    /** Whether the partition's state is known (else call `open` with its committed watermark first). */
    isOpen(topic: string, partition: number): boolean {
      return partitions.has(`${topic}:${partition}`);
    },

    /**
     * Opens a partition at its committed checkpoint: the watermark, and the offset (null: none committed). A
     * watermark ahead of the clock (committed by an earlier version, which let an event dated years ahead move it)
     * is taken as the clock: no watermark passes the time its records were read.
     */
    open(topic: string, partition: number, checkpoint: number, committedOffset: string | null = null): void {
      const watermark = Math.min(checkpoint, clock());
      const offset = committedOffset === null ? -1n : BigInt(committedOffset);
      partitions.set(`${topic}:${partition}`, {
        topic,
        partition,
        watermark,
        committedWatermark: watermark,
        committedOffset: offset,
        lastOffset: null,
        acceptedOffset: offset,
        withheld: null,
        entities: groups.map(() => new Map()),
        heapBytes: 0,
        dirty: [],
        eventTimes: [],
        seen: new Map(),
        seenLoaded: null,
        unloggedIds: [],
        chunks: [],
        seenPrunedAt: -Infinity,
        lost: false,
      });
    },

    /** With `confirmsCommits`: call it once `flush`'s commits are accepted. */
    committed,

    /** Where a loaded batch's partition stands before the batch is applied (for `withhold`). */
    checkpoint(loaded: LoadedBatch): Checkpoint {
      return { lastOffset: loaded.partition.lastOffset, watermark: loaded.partition.watermark };
    },

    /**
     * The dead letters of a batch applied from `before` could not be published: the partition's commits go no
     * further than `before` until they are (`published`). A replay from its commit makes them again.
     */
    withhold(loaded: LoadedBatch, before: Checkpoint, letters: OutgoingRecord[]): void {
      const { partition } = loaded;
      // Reassigned since: consumption resumes from the committed offsets, which these letters are after.
      if (partitions.get(`${partition.topic}:${partition.partition}`) !== partition) return;
      if (partition.withheld) partition.withheld.letters.push(...letters);
      else partition.withheld = { topic: partition.topic, partition: partition.partition, letters, before };
    },

    /** The dead letters still to publish, by partition (see `withhold`). */
    withheld(): WithheldDeadLetters[] {
      return [...partitions.values()].flatMap((partition) => (partition.withheld ? [partition.withheld] : []));
    },

    /** Whether the partition has dead letters still to publish. */
    withholds(topic: string, partition: number): boolean {
      return partitions.get(`${topic}:${partition}`)?.withheld != null;
    },

    /** Withheld dead letters are published: their partition's commits go on. */
    published(withheld: WithheldDeadLetters): void {
      const partition = partitions.get(`${withheld.topic}:${withheld.partition}`);
      if (partition?.withheld === withheld) partition.withheld = null;
    },

    /** Forgets all unflushed progress (after a rebalance, consumption resumes from the commits). */
    reset(): void {
      partitions.clear();
    },

    /** Forgets a partition (a lost one, consumed again from its commit: call `open` before its next batch). */
    close(topic: string, partition: number): void {
      partitions.delete(`${topic}:${partition}`);
    },

    /**
     * Decodes a batch and loads, in one round trip, the stored state of every entity it
     * touches that is not in memory. Batches of different partitions may be loaded while
     * others are applied or flushed; one partition's batches are loaded and applied in order.
     */
    async load(batch: RecordBatch): Promise<LoadedBatch> {
      const partition = partitions.get(`${batch.topic}:${batch.partition}`);
      if (!partition) throw new Error(`partition ${batch.topic}:${batch.partition} is not open`);
      if (partition.lost) throw new PartitionLost(partition);
      const readAt = clock();
      const decoded = batch.records.map((record) => decode(record, readAt));
      // The batch keeps its entities: a flush may evict clean ones from the cache meanwhile.
      const entities = groups.map(() => new Map<string, CachedEntity>());
      const missing: { g: number; id: string }[] = [];
      const wanted = groups.map(() => new Set<string>());
      for (const result of decoded) {
        if (!result.ok) continue;
        for (let g = 0; g < groups.length; g++) {
          const id = groups[g]!.entityId(result.event.values);
          if (id === null || entities[g]!.has(id) || wanted[g]!.has(id)) continue;
          const cached = partition.entities[g]!.get(id);
          if (cached) {
            entities[g]!.set(id, cached);
            // The most recently loaded go last: a flush forgets the least recently loaded first.
            partition.entities[g]!.delete(id);
            partition.entities[g]!.set(id, cached);
          } else {
            wanted[g]!.add(id);
            missing.push({ g, id });
          }
        }
      }
      partition.seenLoaded ??= loadSeen(partition).catch((error: unknown) => {
        partition.seenLoaded = null;
        throw error;
      });
      const loadingSeen = partition.seenLoaded;
      // Awaited below, after the entities' read; when that read fails first (the store is down), the batch fails
      // with it and this failure must not go unhandled (Node ends the process on an unhandled rejection).
      loadingSeen.catch(() => undefined);
      if (missing.length > 0) {
        const field = stateField(batch.partition);
        const stored = await options.store.read(missing.map(({ g, id }) => keyOf({ group: groups[g]!, id })));
        missing.forEach(({ g, id }, i) => {
          const fields = stored[i] ?? null;
          let offset = storedOffset(batch.partition, fields);
          const value = fields?.[field];
          let state: PartitionState;
          try {
            // A progress field that is no offset (written by something else) fences nothing: the state starts over.
            if (offset !== null && !/^\d{1,20}$/.test(offset)) {
              const stored = offset.slice(0, 40);
              offset = null;
              throw new Error(`stored offset of partition ${batch.partition} is no offset: ${JSON.stringify(stored)}`);
            }
            state = parsePartitionState(batch.partition, fields);
          } catch (error) {
            state = emptyState();
            options.unreadableState?.(`${groups[g]!.id} ${groups[g]!.entity} ${id}`, (error as Error).message);
          }
          // Ids inside a state written by an earlier version: they join the partition's (and its log).
          for (const [eventId, time] of state.seen) see(partition, eventId, time);
          state.seen.clear();
          const entity: CachedEntity = {
            group: groups[g]!,
            g,
            id,
            state,
            storedOffset: offset === null ? -1n : BigInt(offset),
            dirty: false,
            prunedAt: -Infinity,
            heapBytes: heapEstimate(value?.length ?? 0),
          };
          entities[g]!.set(id, entity);
          cache(partition, entity);
        });
      }
      await loadingSeen;
      return { batch, partition, decoded, entities };
    },

    /** Applies a loaded batch to the in-memory state (synchronously: no flush sees half of it). */
    apply(loaded: LoadedBatch): BatchOutcome {
      const { batch, partition, decoded, entities } = loaded;
      const outcome: BatchOutcome = { applied: 0, replayed: 0, duplicates: 0, rejected: [] };
      // Reassigned since it was loaded: consumption resumes from the committed offsets.
      if (partitions.get(`${batch.topic}:${batch.partition}`) !== partition) return outcome;
      if (partition.lost) throw new PartitionLost(partition);
      for (let g = 0; g < groups.length; g++) {
        // Entities a flush forgot while this batch was loaded are cached again.
        for (const [id, entity] of entities[g]!) if (!partition.entities[g]!.has(id)) cache(partition, entity);
      }
      for (let r = 0; r < decoded.length; r++) {
        const result = decoded[r]!;
        const record = batch.records[r]!;
        const offset = BigInt(record.offset);
        if (offset < partition.committedOffset) {
          outcome.replayed++;
          continue;
        }
        partition.lastOffset = offset;
        if (!result.ok) {
          outcome.rejected.push({ record, reason: result.reason, detail: result.detail });
          continue;
        }
        const event = result.event;
        const admission = admitEvent(partition, event, options.allowedLatenessMs);
        if (admission.verdict === 'late') {
          outcome.rejected.push({ record, reason: 'late', detail: admission.detail });
          continue;
        }
        // A copy of an event admitted before, unless the record itself is replayed. An admitted event is seen
        // whether applied now or found applied by the stored states (a replay); its id goes to the next chunk.
        const duplicate = admission.verdict === 'duplicate';
        if (!duplicate) partition.unloggedIds.push([event.id, event.time]);
        let applied = false;
        let replayed = false;
        for (let g = 0; g < groups.length; g++) {
          const id = groups[g]!.entityId(event.values);
          if (id === null) continue;
          const entity = entities[g]!.get(id)!;
          if (offset <= entity.storedOffset) {
            replayed = true;
            continue;
          }
          if (duplicate || applyEvent(groups[g]!, entity.state, event) !== 'applied') continue;
          markDirty(partition, entity);
          applied = true;
        }
        if (applied) {
          outcome.applied++;
          partition.eventTimes.push(event.time);
        } else if (replayed) outcome.replayed++;
        else if (duplicate) outcome.duplicates++;
      }
      return outcome;
    },

    /** `load` then `apply`. */
    async process(batch: RecordBatch): Promise<BatchOutcome> {
      return this.apply(await this.load(batch));
    },

    /**
     * Writes every changed entity and resolves with what became durable. The states are
     * encoded when it is called, so `process` may run while the write is in flight (the
     * next batch overlaps the round trip); a flush waits for the previous one's write.
     */
    flush(): Promise<FlushOutcome> {
      const previous = inFlight;
      const failuresBefore = failures;
      const now = clock();
      const writes: StateWrite[] = [];
      const written: { partition: Partition; entity: CachedEntity; offset: bigint }[] = [];
      const logWrites: { partition: Partition; write: EventIdLogWrite; removed: { name: string; newest: number }[] }[] = [];
      for (const partition of partitions.values()) {
        if (partition.lastOffset === null || partition.lost) continue;
        const offset = partition.lastOffset.toString();
        const field = stateField(partition.partition);
        for (const entity of partition.dirty) {
          if (!entity.dirty) continue;
          // At the partition's event time when it is behind the clock (a replay of older events): every read at a
          // time the stream has reached still finds its tiles. A replay moves that time on faster than the clock.
          const pruneAt = Math.min(now, partition.watermark);
          if (pruneAt - entity.prunedAt >= PRUNE_INTERVAL_MS) {
            pruneState(entity.group, entity.state, pruneAt);
            entity.prunedAt = pruneAt;
          }
          // The whole state in one field: no field of it is left to remove.
          const set = stateFields(partition.partition, entity.state);
          // The ttl from the newest event when it is ahead of the clock (up to MAX_EVENT_TIME_AHEAD_MS): the windows read
          // its tiles until then plus the window, which the ttl outlasts (it expired up to an hour early).
          const ahead = Math.max(0, (entity.state.newest ?? now) - now);
          writes.push({ key: keyOf(entity), partition: partition.partition, offset, set, remove: [], ttlMs: entity.group.ttlMs + ahead });
          const heapBytes = heapEstimate(set[field]!.length);
          if (partition.entities[entity.g]!.get(entity.id) === entity) partition.heapBytes += heapBytes - entity.heapBytes;
          entity.heapBytes = heapBytes;
          entity.dirty = false;
          written.push({ partition, entity, offset: partition.lastOffset });
        }
        partition.dirty = [];
        const logWrite = eventIdLogWrite(partition, partition.watermark - options.allowedLatenessMs, now);
        if (logWrite) logWrites.push({ partition, ...logWrite });
      }
      const durable: { partition: Partition; commit: OffsetCommit }[] = [];
      const eventTimes: number[] = [];
      for (const partition of partitions.values()) {
        // Up to the batch whose dead letters are not published, with the watermark before it: a replay makes them again.
        const upTo: Checkpoint = partition.withheld?.before ?? partition;
        if (upTo.lastOffset !== null && upTo.lastOffset >= partition.acceptedOffset && !partition.lost) {
          durable.push({
            partition,
            commit: {
              topic: partition.topic,
              partition: partition.partition,
              offset: (upTo.lastOffset + 1n).toString(),
              metadata: encodeCheckpoint(upTo.watermark),
            },
          });
        }
        for (const time of partition.eventTimes) eventTimes.push(time);
        partition.eventTimes = [];
      }

      const complete = async (): Promise<FlushOutcome> => {
        let results;
        try {
          await previous.catch(() => undefined);
          if (failures !== failuresBefore)
            throw new Error('an earlier write of changed entities failed; they are written by the next flush');
          results = await options.store.write(writes);
          // After the states: the log never names an event whose effect is not stored.
          await Promise.all(logWrites.map(({ write }) => options.store.writeEventIds(write)));
        } catch (error) {
          // Written again (whole) by the next flush, whose offsets are committed only then.
          failures++;
          for (const { partition, entity } of written) markDirty(partition, entity);
          for (const { partition, write, removed } of logWrites) {
            if (write.add) {
              partition.unloggedIds = write.add.ids.concat(partition.unloggedIds);
              partition.chunks = partition.chunks.filter((chunk) => chunk.name !== write.add!.name);
            }
            partition.chunks.push(...removed);
          }
          const partition = partitions.values().next().value;
          if (partition) partition.eventTimes.push(...eventTimes);
          throw error;
        }
        let fenced = 0;
        let unwritable = 0;
        results.forEach((result, i) => {
          const { partition, entity, offset } = written[i]!;
          if (result.applied) {
            if (offset > entity.storedOffset) entity.storedOffset = offset;
            delete entity.unwritable;
          } else if ('unwritable' in result) {
            unwritable++;
            if (!entity.unwritable) options.unwritableState?.(`${entity.group.id} ${entity.group.entity} ${entity.id}`, result.unwritable);
            entity.unwritable = true;
            // Kept (never evicted while dirty) and written again by each flush, until its key is cleared.
            markDirty(partition, entity);
          } else {
            // Another member owns the partition now (or did meanwhile): what this process holds of it may lack
            // that member's updates, and its own since may be lost with a copy of one entity. It lets the partition go.
            fenced++;
            lose(partition);
          }
        });
        const commits: OffsetCommit[] = [];
        for (const { partition, commit } of durable) if (!partition.lost) commits.push(commit);
        if (!options.confirmsCommits) committed(commits);
        evictBeyondBudget();
        return { written: writes.length - fenced - unwritable, fenced, unwritable, commits, eventTimes };
      };
      const outcome = complete();
      inFlight = outcome;
      return outcome;
    },
  };
}

export type FeatureProcessor = ReturnType<typeof createFeatureProcessor>;
