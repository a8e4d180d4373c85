/**
 * A consumer group's lag per partition on a gauge labelled `topic` and `partition` (beside any
 * fixed labels): the records of the partition from the member's position on, the end offset less
 * the next offset the member consumes, as Kafka's lag exporters count it. A member reports a batch
 * as it arrives (its records included, so that the lag grows while batches fail and are delivered
 * again) and once it is handled (what is left after it), and forgets its partitions when a
 * rebalance may have given them to another member (that one's would stay frozen in the sum).
 * Between batches, every `refreshMs` (15 s) from its first report on, it reads where its
 * partitions end now (`EventLog.endOffsets`, once per topic) and counts again from its position:
 * the lag of a member stuck on a batch, or slow behind a growing backlog, grows with the records
 * that pile up. A partition counts from its first batch (before it, the member does not know it
 * holds it). An empty batch (a fetch of transaction markers or aborted records only,
 * `emptyBatches`) arrives handled: without it, the lag of a partition that ends with a marker would
 * stay at 1 or more.
 *
 * The same refresh reads the group's committed offsets (`EventLog.committedOffsets`, once per
 * topic) and stops reporting a partition whose commit has passed the member's position: only
 * another member can have committed there, so the partition is no longer this one's. A member
 * stuck on a batch may lose its partitions without knowing it (evicted from the group when it no
 * longer heartbeats, it sees no rebalance until its batch ends); without this, its lag would grow
 * with what the new owner consumes, a backlog that does not exist.
 *
 * Beside it, when the member last handled a batch of each partition it reports (for a partition
 * it has just been given, when its first batch arrived), in Unix seconds. A member stuck on a
 * partition (a batch that never ends, while the member keeps its partitions) leaves this time
 * falling behind the clock while the lag stays above 0.
 */
import type { Gauge } from 'prom-client';
import type { EventLog, RecordBatch } from './event-log/types.js';
import type { Logger } from './logger.js';

export interface ConsumerLag {
  /**
   * The batch's partition's lag from its first record, when the batch says where its partition ends; an
   * empty batch (no record delivered) is handled as it arrives.
   */
  arrived(batch: RecordBatch): number | undefined;
  /** The lag after the batch, empty or not. */
  handled(batch: RecordBatch): number | undefined;
  /** Stops reporting the partitions reported so far. */
  forget(): void;
  /** Stops refreshing the lag (the consumer stops, or failed to start); the last values stay. */
  stop(): void;
}

export interface ConsumerLagGauges {
  lag: Gauge;
  /** When a batch of the partition was last handled (or its first arrived), Unix seconds. */
  consumedAt: Gauge;
}

export interface ConsumerLagOptions {
  /** Where the partitions end now and where the group has committed, asked every `refreshMs`. */
  eventLog: Pick<EventLog, 'endOffsets' | 'committedOffsets'>;
  /** The member's consumer group. */
  groupId: string;
  /** Says when the offsets of a topic cannot be read (once, until they can again). */
  logger: Logger;
  /** Labels of every series beside `topic` and `partition`. */
  labels?: Record<string, string>;
  /** How often the lag is counted again from the partitions' end offsets (default 15 s). */
  refreshMs?: number;
  clock?: () => number;
}

/** A partition the member holds: its labels and where it stands (replaced at each batch). */
interface Held {
  topic: string;
  partition: number;
  labels: Record<string, string>;
  /** The next offset the member consumes: the first of the batch in flight, or past the last handled. */
  next: bigint;
}

export function trackConsumerLag(gauges: ConsumerLagGauges, options: ConsumerLagOptions): ConsumerLag {
  const { eventLog, groupId, logger, labels: fixed = {}, clock = Date.now } = options;
  const held = new Map<string, Held>();
  const report = (batch: RecordBatch, next: bigint, handled: boolean) => {
    if (batch.highWatermark === undefined) return undefined;
    const lag = Number(BigInt(batch.highWatermark) - next);
    const id = `${batch.topic}:${batch.partition}`;
    const before = held.get(id);
    const labels = before?.labels ?? { ...fixed, topic: batch.topic, partition: String(batch.partition) };
    held.set(id, { topic: batch.topic, partition: batch.partition, labels, next });
    refreshFromNowOn();
    gauges.lag.set(labels, lag);
    // A partition just given is counted from its first batch.
    if (handled || !before) gauges.consumedAt.set(labels, clock() / 1000);
    return lag;
  };

  const drop = (id: string, { labels }: Held) => {
    gauges.lag.remove(labels);
    gauges.consumedAt.remove(labels);
    held.delete(id);
  };

  /** Topics whose offsets could not be read at the last try (said once). */
  const unreadable = new Set<string>();
  let stopped = false;
  const refresh = async () => {
    const partitions = [...held];
    for (const topic of new Set(partitions.map(([, p]) => p.topic))) {
      try {
        const [ends, commits] = await Promise.all([eventLog.endOffsets(topic), eventLog.committedOffsets(groupId, topic)]);
        unreadable.delete(topic);
        for (const [id, partition] of partitions.filter(([, p]) => p.topic === topic)) {
          // Not when a batch was reported meanwhile (its end may be newer, its commit its own) or the partition forgotten.
          if (stopped || held.get(id) !== partition) continue;
          const committed = commits.find((c) => c.partition === partition.partition)?.offset;
          if (committed != null && BigInt(committed) > partition.next) {
            drop(id, partition);
            continue;
          }
          const end = ends.find((e) => e.partition === partition.partition)?.end;
          if (end !== undefined) gauges.lag.set(partition.labels, Number(BigInt(end) - partition.next));
        }
      } catch (error) {
        if (!stopped && !unreadable.has(topic)) {
          logger.warn({ err: error, ...fixed, topic }, 'consumer lag not refreshed: the offsets of the topic cannot be read');
        }
        unreadable.add(topic);
      }
    }
  };
  let refreshing = false;
  let timer: NodeJS.Timeout | undefined;
  /** From the first partition reported on: a consumer that fails to start (or stops first) leaves no timer. */
  const refreshFromNowOn = () => {
    if (timer || stopped) return;
    timer = setInterval(() => {
      // One refresh at a time: a slow broker delays the next, never consumption.
      if (refreshing) return;
      refreshing = true;
      void refresh().finally(() => (refreshing = false));
    }, options.refreshMs ?? 15_000);
    timer.unref();
  };

  /** Past the fetch's last offset: a transaction's marker after the last record is not waiting. */
  const handled = (batch: RecordBatch) => report(batch, BigInt(batch.lastOffset ?? batch.records.at(-1)!.offset) + 1n, true);
  return {
    arrived: (batch) => (batch.records.length === 0 ? handled(batch) : report(batch, BigInt(batch.records[0]!.offset), false)),
    handled,
    forget: () => {
      for (const [id, partition] of held) drop(id, partition);
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
