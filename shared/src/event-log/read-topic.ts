/**
 * Reads a topic from the start of each partition up to its end when the read was opened, as a
 * consumer group of its own that commits nothing (the services' groups are not touched): what
 * the backfill and the trainer's commands replay.
 */
import { randomUUID } from 'node:crypto';
import type { EventLog, LogRecord, PartitionOffsets } from './types.js';

export class TopicReadTimeout extends Error {
  override name = 'TopicReadTimeout';
}

export interface TopicReadOptions {
  /** Gives up when no record comes in this time while the topic is not read to its end (2 minutes). */
  timeoutMs?: number;
  /** The consumer group's name before its random suffix. */
  groupPrefix?: string;
}

/**
 * A topic's records up to each partition's end when this was called, read as they are iterated,
 * once: each partition's records in offset order, the partitions' interleaved as the consumer
 * fetches them. A batch is handed on only once the one before it was consumed, so what is held
 * is a batch, not the topic. The read's consumer group is joined now, not when the records are
 * first asked for: a new group's first join takes ~3 s (Kafka delays it by
 * `group.initial.rebalance.delay.ms`, 3 s by default; the mock cluster alike), and topics
 * opened one after the other, then read one after the other, are joined at once. Its
 * first batch waits for the iteration, the consumer heartbeating meanwhile; a topic opened
 * and never read is let go when its event log closes (`EventLog.close`).
 */
export async function openTopic(
  eventLog: EventLog,
  topic: string,
  options: TopicReadOptions = {},
): Promise<AsyncIterable<LogRecord> & { partitions: number }> {
  const ends = await eventLog.endOffsets(topic);
  const records = startReading(eventLog, topic, ends, options);
  let read = false;
  return {
    /** The topic's partitions, numbered from 0. */
    partitions: ends.length,
    async *[Symbol.asyncIterator]() {
      if (read) throw new Error(`topic ${topic} is read once: its records must be consumed in one pass`);
      read = true;
      yield* records();
    },
  };
}

/** Each partition's records in offset order, up to the partition's end when the read began (held whole). */
export async function readTopicToEnd(eventLog: EventLog, topic: string, options: TopicReadOptions = {}): Promise<LogRecord[][]> {
  const ends = await eventLog.endOffsets(topic);
  const partitions: LogRecord[][] = ends.map(() => []);
  for await (const record of startReading(eventLog, topic, ends, options)()) partitions[record.partition]!.push(record);
  return partitions;
}

/** How often a batch waiting to be consumed tells the group its consumer is alive. */
const HEARTBEAT_MS = 1_000;

/**
 * Subscribes now, without waiting for the group's join (kafkajs's `run` resolves once the
 * consumer has joined); the records come as the returned generator is iterated, which waits
 * for the subscription and stops it at its end.
 */
function startReading(
  eventLog: EventLog,
  topic: string,
  ends: PartitionOffsets[],
  options: TopicReadOptions,
): () => AsyncGenerator<LogRecord> {
  const end = new Map(ends.map((p) => [p.partition, BigInt(p.end)]));
  const remaining = new Set(ends.filter((p) => BigInt(p.end) > BigInt(p.start)).map((p) => p.partition));
  if (remaining.size === 0) return async function* () {};
  /** The next offset of each partition to hand on: a batch delivered again (after a rebalance) starts before it. */
  const next = new Map<number, bigint>();
  /** Batches handed on, each with the call that lets its handler return once it is consumed. */
  const handed: { records: LogRecord[]; consumed: () => void }[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  const subscribing = eventLog.subscribe({
    groupId: `${options.groupPrefix ?? 'tributary-read'}-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    autoCommit: false,
    // A topic written in transactions ends with a commit marker, which is never delivered as a record.
    emptyBatches: true,
    eachBatch: async (batch) => {
      const last = end.get(batch.partition);
      if (closed || last === undefined || !remaining.has(batch.partition)) return;
      const records: LogRecord[] = [];
      for (const record of batch.records) {
        const offset = BigInt(record.offset);
        if (offset >= last) break;
        if (offset < (next.get(batch.partition) ?? 0n)) continue;
        records.push(record);
        next.set(batch.partition, offset + 1n);
        if (offset + 1n >= last) remaining.delete(batch.partition);
      }
      // Done once the fetch reached the end, though the last offsets held no record to deliver (transaction markers).
      if (batch.lastOffset !== undefined && BigInt(batch.lastOffset) + 1n >= last) remaining.delete(batch.partition);
      if (records.length === 0) {
        wake?.();
        return;
      }
      const consumed = new Promise<void>((resolve) => handed.push({ records, consumed: resolve }));
      wake?.();
      // Until the reader takes it (or stops), which may be long after it came (the topic is read later), or until the
      // consumer stops (a topic opened and never read: its event log's close waits for this handler).
      const heartbeats = batch.heartbeat && setInterval(() => void batch.heartbeat!().catch(() => undefined), HEARTBEAT_MS);
      let release = () => {};
      const stopped = new Promise<void>((resolve) => {
        release = () => resolve();
        if (batch.stopping?.aborted) resolve();
        else batch.stopping?.addEventListener('abort', release);
      });
      try {
        await Promise.race([consumed, stopped]);
      } finally {
        clearInterval(heartbeats);
        batch.stopping?.removeEventListener('abort', release);
      }
    },
  });
  // Its failure is the read's, thrown when the records are asked for.
  subscribing.catch(() => undefined);
  const timeoutMs = options.timeoutMs ?? 120_000;
  return async function* () {
    let timer: NodeJS.Timeout | undefined;
    try {
      await subscribing;
      for (;;) {
        const batch = handed.shift();
        if (batch) {
          try {
            yield* batch.records;
          } finally {
            batch.consumed();
          }
          continue;
        }
        if (remaining.size === 0) return;
        await new Promise<void>((resolve, reject) => {
          wake = resolve;
          timer = setTimeout(
            () =>
              reject(
                new TopicReadTimeout(
                  `topic ${topic}: no record came within ${timeoutMs} ms before its end (partitions still short: ${[...remaining].join(', ')})`,
                ),
              ),
            timeoutMs,
          );
        });
        wake = null;
        clearTimeout(timer);
      }
    } finally {
      clearTimeout(timer);
      closed = true;
      for (const batch of handed.splice(0)) batch.consumed();
      await (await subscribing.catch(() => null))?.stop();
    }
  };
}
