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
 */
import {
  applyEvent,
  parsePartitionState,
  pruneSeen,
  pruneState,
  stateFields,
  storedOffset,
  type CompiledFeatureGroup,
  type DeadLetterReason,
  type EventSource,
  type LogRecord,
  type OffsetCommit,
  type OnlineStore,
  type PartitionState,
  type RecordBatch,
  type StateWrite,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import { sourceDecoder, type DecodeResult } from './decode.js';

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
  /** Offsets to commit, with the watermark as metadata. */
  commits: OffsetCommit[];
  /** Event times of the events that became readable with this flush. */
  eventTimes: number[];
}

export interface FeatureProcessorOptions {
  store: OnlineStore;
  /** The source consumed; of `groups`, those fed by it are maintained. */
  source: EventSource & { schema: TSchema };
  groups: CompiledFeatureGroup[];
  allowedLatenessMs: number;
  clock?: () => number;
  /** Clean entities kept in memory at most (dirty ones are always kept until flushed). */
  maxCachedEntities?: number;
}

interface CachedEntity {
  group: CompiledFeatureGroup;
  id: string;
  state: PartitionState;
  /** Highest source offset the stored state includes. */
  storedOffset: bigint;
  /** Changed since its state was last encoded for a write. */
  dirty: boolean;
  /** When its expired tiles and old event ids were last removed. */
  prunedAt: number;
}

/** Expired tiles are removed at most this often per entity (reads ignore them anyway). */
const PRUNE_INTERVAL_MS = 60_000;

interface Partition {
  topic: string;
  partition: number;
  /** Highest event time seen (the watermark before lateness). */
  watermark: number;
  /** Offset of the last record processed, and of the last one made durable. */
  lastOffset: bigint | null;
  flushedOffset: bigint | null;
  /** The cached entities of each group (same order as the processor's groups), by id. */
  entities: Map<string, CachedEntity>[];
  eventTimes: number[];
}

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
  const maxCached = options.maxCachedEntities ?? 200_000;
  const partitions = new Map<string, Partition>();
  /** Settles when the last flush's write has completed. */
  let inFlight: Promise<unknown> = Promise.resolve();
  /**
   * Failed writes so far. A failed write marks its entities changed again for the next
   * flush, so a flush encoded before that is incomplete: it fails as well (it must not
   * commit offsets whose changes are not all written).
   */
  let failures = 0;

  const keyOf = (entry: { group: CompiledFeatureGroup; id: string }) => ({
    group: entry.group.id,
    entity: entry.group.entity,
    id: entry.id,
  });

  return {
    /** Whether the partition's state is known (else call `open` with its committed watermark first). */
    isOpen(topic: string, partition: number): boolean {
      return partitions.has(`${topic}:${partition}`);
    },

    open(topic: string, partition: number, watermark: number): void {
      partitions.set(`${topic}:${partition}`, {
        topic,
        partition,
        watermark,
        lastOffset: null,
        flushedOffset: null,
        entities: groups.map(() => new Map()),
        eventTimes: [],
      });
    },

    /** Forgets all unflushed progress (after a rebalance, consumption resumes from the commits). */
    reset(): void {
      partitions.clear();
    },

    /**
     * Decodes a batch and loads, in one round trip, the stored state of every entity it
     * touches that is not in memory. Batches of different partitions may be loaded while
     * others are applied or flushed; one partition's batches are loaded and applied in order.
     */
    async load(batch: RecordBatch): Promise<LoadedBatch> {
      const partition = partitions.get(`${batch.topic}:${batch.partition}`);
      if (!partition) throw new Error(`partition ${batch.topic}:${batch.partition} is not open`);
      const decoded = batch.records.map(decode);
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
          if (cached) entities[g]!.set(id, cached);
          else {
            wanted[g]!.add(id);
            missing.push({ g, id });
          }
        }
      }
      if (missing.length > 0) {
        const stored = await options.store.read(missing.map(({ g, id }) => keyOf({ group: groups[g]!, id })));
        missing.forEach(({ g, id }, i) => {
          const fields = stored[i] ?? null;
          const offset = storedOffset(batch.partition, fields);
          const entity: CachedEntity = {
            group: groups[g]!,
            id,
            state: parsePartitionState(batch.partition, fields),
            storedOffset: offset === null ? -1n : BigInt(offset),
            dirty: false,
            prunedAt: -Infinity,
          };
          entities[g]!.set(id, entity);
          partition.entities[g]!.set(id, entity);
        });
      }
      return { batch, partition, decoded, entities };
    },

    /** Applies a loaded batch to the in-memory state (synchronously: no flush sees half of it). */
    apply(loaded: LoadedBatch): BatchOutcome {
      const { batch, partition, decoded, entities } = loaded;
      const outcome: BatchOutcome = { applied: 0, replayed: 0, duplicates: 0, rejected: [] };
      // Reassigned since it was loaded: consumption resumes from the committed offsets.
      if (partitions.get(`${batch.topic}:${batch.partition}`) !== partition) return outcome;
      for (let g = 0; g < groups.length; g++) {
        for (const [id, entity] of entities[g]!) if (!partition.entities[g]!.has(id)) partition.entities[g]!.set(id, entity);
      }
      for (let r = 0; r < decoded.length; r++) {
        const result = decoded[r]!;
        const record = batch.records[r]!;
        const offset = BigInt(record.offset);
        partition.lastOffset = offset;
        if (!result.ok) {
          outcome.rejected.push({ record, reason: result.reason, detail: result.detail });
          continue;
        }
        const event = result.event;
        const lowWatermark = partition.watermark - options.allowedLatenessMs;
        if (event.time < lowWatermark) {
          outcome.rejected.push({
            record,
            reason: 'late',
            detail: `event time ${new Date(event.time).toISOString()} is older than the watermark ${new Date(lowWatermark).toISOString()} (allowed lateness ${options.allowedLatenessMs} ms)`,
          });
          continue;
        }
        if (event.time > partition.watermark) partition.watermark = event.time;
        let applied = false;
        let replayed = false;
        let duplicate = false;
        for (let g = 0; g < groups.length; g++) {
          const id = groups[g]!.entityId(event.values);
          if (id === null) continue;
          const entity = entities[g]!.get(id)!;
          if (offset <= entity.storedOffset) {
            replayed = true;
            continue;
          }
          const result = applyEvent(groups[g]!, entity.state, event);
          if (result === 'duplicate') duplicate = true;
          if (result !== 'applied') continue;
          entity.dirty = true;
          applied = true;
        }
        if (applied) {
          outcome.applied++;
          partition.eventTimes.push(event.time);
        } else if (duplicate) outcome.duplicates++;
        else if (replayed) outcome.replayed++;
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
      const written: { partition: Partition; g: number; entity: CachedEntity; offset: bigint }[] = [];
      for (const partition of partitions.values()) {
        if (partition.lastOffset === null) continue;
        const offset = partition.lastOffset.toString();
        partition.entities.forEach((entities, g) => {
          for (const entity of entities.values()) {
            if (!entity.dirty) continue;
            if (now - entity.prunedAt >= PRUNE_INTERVAL_MS) {
              // At the partition's event time when it is behind the clock (a replay of older events): every read at a
              // time the stream has reached still finds its tiles.
              pruneState(entity.group, entity.state, Math.min(now, partition.watermark), partition.watermark - options.allowedLatenessMs);
              entity.prunedAt = now;
            } else {
              pruneSeen(entity.state, partition.watermark - options.allowedLatenessMs);
            }
            // The whole state in one field: no field of it is left to remove.
            writes.push({
              key: keyOf(entity),
              partition: partition.partition,
              offset,
              set: stateFields(partition.partition, entity.state),
              remove: [],
              ttlMs: entity.group.ttlMs,
            });
            entity.dirty = false;
            written.push({ partition, g, entity, offset: partition.lastOffset! });
          }
        });
      }
      const durable: { partition: Partition; offset: bigint; commit: OffsetCommit }[] = [];
      const eventTimes: number[] = [];
      for (const partition of partitions.values()) {
        if (partition.lastOffset !== null && partition.lastOffset !== partition.flushedOffset) {
          durable.push({
            partition,
            offset: partition.lastOffset,
            commit: {
              topic: partition.topic,
              partition: partition.partition,
              offset: (partition.lastOffset + 1n).toString(),
              metadata: encodeCheckpoint(partition.watermark),
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
        } catch (error) {
          // Written again (whole) by the next flush, whose offsets are committed only then.
          failures++;
          for (const { entity } of written) entity.dirty = true;
          const partition = partitions.values().next().value;
          if (partition) partition.eventTimes.push(...eventTimes);
          throw error;
        }
        let fenced = 0;
        results.forEach((result, i) => {
          const { partition, g, entity, offset } = written[i]!;
          if (result.applied) {
            if (offset > entity.storedOffset) entity.storedOffset = offset;
          } else {
            // Another member owns the partition now: forget our copy.
            fenced++;
            if (partition.entities[g]!.get(entity.id) === entity) partition.entities[g]!.delete(entity.id);
          }
        });
        for (const { partition, offset } of durable) {
          if (partition.flushedOffset === null || offset > partition.flushedOffset) partition.flushedOffset = offset;
        }
        // Bound memory: forget clean entities beyond the cache size (oldest first).
        for (const partition of partitions.values()) {
          let excess = partition.entities.reduce((sum, entities) => sum + entities.size, 0) - maxCached;
          for (const entities of partition.entities) {
            for (const [id, entity] of entities) {
              if (excess <= 0) break;
              if (!entity.dirty) {
                entities.delete(id);
                excess--;
              }
            }
          }
        }
        return { written: writes.length - fenced, fenced, commits: durable.map((d) => d.commit), eventTimes };
      };
      const outcome = complete();
      inFlight = outcome;
      return outcome;
    },
  };
}

export type FeatureProcessor = ReturnType<typeof createFeatureProcessor>;
