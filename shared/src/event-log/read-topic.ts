/**
 * Reads a topic from the start of each partition up to its end when the read began, as a
 * consumer group of its own that commits nothing (the services' groups are not touched): what
 * the backfill and the trainer's commands replay.
 */
import { randomUUID } from 'node:crypto';
import type { EventLog, LogRecord } from './types.js';

export class TopicReadTimeout extends Error {
  override name = 'TopicReadTimeout';
}

export interface TopicReadOptions {
  /** Gives up when the topic is not read to its end in this time (2 minutes). */
  timeoutMs?: number;
  /** The consumer group's name before its random suffix. */
  groupPrefix?: string;
}

/** Each partition's records in offset order, up to the partition's end when the read began. */
export async function readTopicToEnd(eventLog: EventLog, topic: string, options: TopicReadOptions = {}): Promise<LogRecord[][]> {
  const ends = await eventLog.endOffsets(topic);
  const partitions: LogRecord[][] = ends.map(() => []);
  const remaining = new Set(ends.filter((p) => BigInt(p.end) > BigInt(p.start)).map((p) => p.partition));
  if (remaining.size === 0) return partitions;
  const end = new Map(ends.map((p) => [p.partition, BigInt(p.end)]));
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const subscription = await eventLog.subscribe({
    groupId: `${options.groupPrefix ?? 'tributary-read'}-${randomUUID()}`,
    topics: [topic],
    fromBeginning: true,
    autoCommit: false,
    // A topic written in transactions ends with a commit marker, which is never delivered as a record.
    emptyBatches: true,
    eachBatch: async (batch) => {
      const last = end.get(batch.partition);
      if (last === undefined || !remaining.has(batch.partition)) return;
      const target = partitions[batch.partition]!;
      for (const record of batch.records) {
        const offset = BigInt(record.offset);
        if (offset >= last) break;
        // A batch delivered again (after a rebalance) holds records already kept.
        if (target.length > 0 && offset <= BigInt(target[target.length - 1]!.offset)) continue;
        target.push(record);
        if (offset + 1n >= last) remaining.delete(batch.partition);
      }
      // Done once the fetch reached the end, though the last offsets held no record to deliver (transaction markers).
      if (batch.lastOffset !== undefined && BigInt(batch.lastOffset) + 1n >= last) remaining.delete(batch.partition);
      if (remaining.size === 0) finish();
    },
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new TopicReadTimeout(
                `topic ${topic}: not read to its end within ${timeoutMs} ms (partitions still short: ${[...remaining].join(', ')})`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await subscription.stop();
  }
  return partitions;
}
