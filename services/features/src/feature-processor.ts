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
  emptyState,
  parsePartitionState,
  progressField,
  pruneState,
  stateFields,
  tileField,
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
import { sourceDecoder } from './decode.js';

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
  changed: Set<string>;
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
  /** Offset of the last record processed, and of the last one committed-to-be. */
  lastOffset: bigint | null;
  flushedOffset: bigint | null;
  entities: Map<string, CachedEntity>;
  eventTimes: number[];
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

  const slotOf = (group: CompiledFeatureGroup, id: string) => `${group.id}\u0000${id}`;
  const keyOf = (entry: { group: CompiledFeatureGroup; id: string }) => ({
    group: entry.group.id,
    entity: entry.group.definition.entity,
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
        entities: new Map(),
        eventTimes: [],
      });
    },

    /** Forgets all unflushed progress (after a rebalance, consumption resumes from the commits). */
    reset(): void {
      partitions.clear();
    },

    async process(batch: RecordBatch): Promise<BatchOutcome> {
      const partition = partitions.get(`${batch.topic}:${batch.partition}`);
      if (!partition) throw new Error(`partition ${batch.topic}:${batch.partition} is not open`);
      const outcome: BatchOutcome = { applied: 0, replayed: 0, duplicates: 0, rejected: [] };
      const decoded = batch.records.map((record) => ({ record, result: decode(record) }));

      // Load, in one round trip, the stored state of every entity not in memory.
      const missing = new Map<string, { group: CompiledFeatureGroup; id: string }>();
      for (const { result } of decoded) {
        if (!result.ok) continue;
        for (const group of groups) {
          const id = result.event.values[group.definition.entity];
          if (typeof id !== 'string' || id.length === 0) continue;
          const slot = slotOf(group, id);
          if (!partition.entities.has(slot)) missing.set(slot, { group, id });
        }
      }
      if (missing.size > 0) {
        const wanted = [...missing.entries()];
        const stored = await options.store.read(wanted.map(([, entry]) => keyOf(entry)));
        wanted.forEach(([slot, entry], i) => {
          const fields = stored[i] ?? null;
          const offset = fields?.[progressField(batch.partition)];
          partition.entities.set(slot, {
            ...entry,
            state: fields ? parsePartitionState(batch.partition, fields) : emptyState(),
            storedOffset: offset === undefined ? -1n : BigInt(offset),
            changed: new Set(),
            dirty: false,
            prunedAt: -Infinity,
          });
        });
      }

      for (const { record, result } of decoded) {
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
        partition.watermark = Math.max(partition.watermark, event.time);
        let applied = false;
        let replayed = false;
        let duplicate = false;
        for (const group of groups) {
          const id = event.values[group.definition.entity];
          if (typeof id !== 'string' || id.length === 0) continue;
          const entity = partition.entities.get(slotOf(group, id))!;
          if (offset <= entity.storedOffset) {
            replayed = true;
            continue;
          }
          const result = applyEvent(group, entity.state, { id: event.id, time: event.time, values: event.values }, entity.changed);
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

    async flush(): Promise<FlushOutcome> {
      const now = clock();
      const writes: StateWrite[] = [];
      const written: { partition: Partition; slot: string; entity: CachedEntity; offset: bigint }[] = [];
      for (const partition of partitions.values()) {
        if (partition.lastOffset === null) continue;
        for (const [slot, entity] of partition.entities) {
          if (!entity.dirty) continue;
          let removed: string[] = [];
          if (now - entity.prunedAt >= PRUNE_INTERVAL_MS) {
            removed = pruneState(entity.group, entity.state, now, partition.watermark - options.allowedLatenessMs);
            entity.prunedAt = now;
            for (const key of removed) entity.changed.delete(key);
          }
          writes.push({
            key: keyOf(entity),
            partition: partition.partition,
            offset: partition.lastOffset.toString(),
            set: stateFields(partition.partition, entity.state, entity.changed),
            remove: removed.map((key) => tileField(partition.partition, key)),
            ttlMs: entity.group.ttlMs,
          });
          written.push({ partition, slot, entity, offset: partition.lastOffset });
        }
      }
      const results = await options.store.write(writes);
      let fenced = 0;
      results.forEach((result, i) => {
        const { partition, slot, entity, offset } = written[i]!;
        if (result.applied) {
          entity.storedOffset = offset;
          entity.changed.clear();
          entity.dirty = false;
        } else {
          // Another member owns the partition now: forget our copy.
          fenced++;
          partition.entities.delete(slot);
        }
      });
      const commits: OffsetCommit[] = [];
      const eventTimes: number[] = [];
      for (const partition of partitions.values()) {
        if (partition.lastOffset !== null && partition.lastOffset !== partition.flushedOffset) {
          commits.push({
            topic: partition.topic,
            partition: partition.partition,
            offset: (partition.lastOffset + 1n).toString(),
            metadata: encodeCheckpoint(partition.watermark),
          });
          partition.flushedOffset = partition.lastOffset;
        }
        eventTimes.push(...partition.eventTimes);
        partition.eventTimes = [];
        // Bound memory: forget clean entities beyond the cache size (oldest first).
        let excess = partition.entities.size - maxCached;
        for (const [slot, entity] of partition.entities) {
          if (excess <= 0) break;
          if (!entity.dirty) {
            partition.entities.delete(slot);
            excess--;
          }
        }
      }
      return { written: writes.length - fenced, fenced, commits, eventTimes };
    },
  };
}

export type FeatureProcessor = ReturnType<typeof createFeatureProcessor>;
