/**
 * Turns one partition's batch of source records into idempotent online-store writes:
 * decode, set aside late and bad records, group events per (feature group, entity), drop
 * what the store already applied (per-entity source offsets), pre-aggregate into tile
 * updates and write them all in one round trip, retrying any entity whose offset moved.
 */
import {
  aggregateEvents,
  windowFirstTile,
  type CompiledFeatureGroup,
  type DeadLetterReason,
  type EntityWrite,
  type OnlineStore,
  type RecordBatch,
  type LogRecord,
} from '@tributary/shared';
import type { SourceDecoder, SourceEvent } from './decode.js';

export interface RejectedRecord {
  record: LogRecord;
  reason: DeadLetterReason;
  detail: string;
}

export interface BatchOutcome {
  /** Events applied to at least one feature group by this call. */
  applied: number;
  /** Events skipped because the store had already applied them (replays). */
  replayed: number;
  rejected: RejectedRecord[];
  /** Newest event time seen in the batch, for freshness. */
  newestEventTime: number | null;
}

export interface PartitionWatermark {
  /** Highest event time seen on the partition. */
  maxEventTime: number;
}

export interface BatchProcessorOptions {
  store: OnlineStore;
  groups: CompiledFeatureGroup[];
  decode: SourceDecoder;
  allowedLatenessMs: number;
  clock?: () => number;
  maxConflictRetries?: number;
}

interface EntityBatch {
  group: CompiledFeatureGroup;
  id: string;
  events: SourceEvent[];
}

export function createBatchProcessor(options: BatchProcessorOptions) {
  const clock = options.clock ?? Date.now;
  const watermarks = new Map<string, PartitionWatermark>();
  const maxRetries = options.maxConflictRetries ?? 5;

  return async function processBatch(batch: RecordBatch): Promise<BatchOutcome> {
    const stream = `${batch.topic}:${batch.partition}`;
    const watermark = watermarks.get(stream) ?? { maxEventTime: -Infinity };
    watermarks.set(stream, watermark);
    const rejected: RejectedRecord[] = [];
    const entities = new Map<string, EntityBatch>();
    let newest: number | null = null;
    for (const record of batch.records) {
      const decoded = options.decode(record);
      if (!decoded.ok) {
        rejected.push({ record, reason: decoded.reason, detail: decoded.detail });
        continue;
      }
      const event = decoded.event;
      const lowWatermark = watermark.maxEventTime - options.allowedLatenessMs;
      if (event.time < lowWatermark) {
        rejected.push({
          record,
          reason: 'late',
          detail: `event time ${new Date(event.time).toISOString()} is older than the watermark ${new Date(lowWatermark).toISOString()} (allowed lateness ${options.allowedLatenessMs} ms)`,
        });
        continue;
      }
      watermark.maxEventTime = Math.max(watermark.maxEventTime, event.time);
      newest = Math.max(newest ?? -Infinity, event.time);
      for (const group of options.groups) {
        const id = event.values[group.definition.entity];
        if (typeof id !== 'string' || id.length === 0) continue;
        const slot = `${group.id}\u0000${id}`;
        const entry = entities.get(slot) ?? { group, id, events: [] };
        entry.events.push(event);
        entities.set(slot, entry);
      }
    }

    const pending = [...entities.values()];
    const keyOf = (e: EntityBatch) => ({ group: e.group.id, entity: e.group.definition.entity, id: e.id });
    let stored = await options.store.readProgress(pending.map((e) => ({ key: keyOf(e), stream })));
    const appliedEvents = new Set<string>();
    const replayedEvents = new Set<string>();
    let todo = pending.map((entry, i) => ({ entry, stored: stored[i] ?? null }));
    for (let attempt = 0; todo.length > 0; attempt++) {
      if (attempt > maxRetries) throw new Error(`online store offsets kept moving for ${todo.length} entities on ${stream}`);
      const now = clock();
      const writes: EntityWrite[] = [];
      const sent: typeof todo = [];
      for (const item of todo) {
        const applied = item.stored === null ? -1n : BigInt(item.stored);
        const fresh = item.entry.events.filter((e) => BigInt(e.offset) > applied);
        for (const e of item.entry.events) if (BigInt(e.offset) <= applied) replayedEvents.add(e.offset);
        if (fresh.length === 0) continue;
        const group = item.entry.group;
        const pruneBefore = new Map<number, number>();
        for (const tileMs of group.tiles.keys()) pruneBefore.set(tileMs, windowFirstTile(now, group.maxWindowMs, tileMs));
        writes.push({
          key: keyOf(item.entry),
          stream,
          expectedOffset: item.stored,
          offset: fresh[fresh.length - 1]!.offset,
          updates: aggregateEvents(group, fresh),
          newestEventTime: Math.max(...fresh.map((e) => e.time)),
          ttlMs: group.ttlMs,
          pruneBefore,
        });
        sent.push({ ...item, entry: { ...item.entry, events: fresh } });
      }
      const results = await options.store.write(writes);
      const retry: typeof todo = [];
      results.forEach((result, i) => {
        const item = sent[i]!;
        if (result.applied) for (const e of item.entry.events) appliedEvents.add(e.offset);
        else retry.push({ entry: item.entry, stored: result.storedOffset });
      });
      todo = retry;
    }
    for (const offset of appliedEvents) replayedEvents.delete(offset);
    stored = [];
    return { applied: appliedEvents.size, replayed: replayedEvents.size, rejected, newestEventTime: newest };
  };
}
