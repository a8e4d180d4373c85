/**
 * Event-time alignment of the partitions one consumer holds (pure; as Flink's watermark alignment): while
 * others of them have records waiting, a partition is taken no further ahead, in event time, than `maxAheadMs`
 * past the slowest of those. The label join merges its partitions (transactions and labels) into labelled
 * transactions, whose event time the feature pipeline holds to its allowed lateness; taken one partition's
 * fetch after the other while it catches up on a backlog, each fetch spanning minutes to hours of event time,
 * its output would go back in time at each turn, and further for the labels that waited for their transactions.
 *
 * A partition's progress is how far it has gone in event time: the latest time among the records taken so far
 * and its first record not taken yet. A partition whose records were all taken when it was fetched holds back
 * none of the others (one that is caught up or idle), nor does one not fetched yet. The first batch of each
 * partition after an assignment is only looked at, and taken later: it tells where the partition stands before
 * any other is taken ahead of it.
 */
import type { RecordBatch } from '@tributary/shared';

/**
 * A batch's event times in offset order (-Infinity for a record that has none), read by index: an array, or
 * times worked out only for the records asked for (a batch held back is fetched again and again, and only its
 * first records are looked at).
 */
export interface EventTimes {
  readonly length: number;
  at(index: number): number | undefined;
}

interface Progress {
  /** The latest event time among the records taken and the first record not taken. */
  time: number;
  /** Whether records of the partition wait beyond those taken. */
  waiting: boolean;
}

export class EventTimeAlignment {
  private readonly partitions = new Map<string, Progress>();

  constructor(private readonly maxAheadMs: number) {}

  /**
   * How many of a batch's records (given by their event times, in offset order; -Infinity for one that has
   * none) to take now: those before the first beyond the slowest other partition with records waiting by
   * more than `maxAheadMs`; none of a partition's first batch since the assignment.
   */
  take(batch: RecordBatch, times: EventTimes): number {
    const id = `${batch.topic}:${batch.partition}`;
    if (!this.partitions.has(id)) {
      let first = -Infinity;
      for (let i = 0; i < times.length && !Number.isFinite(first); i++) first = times.at(i)!;
      this.partitions.set(id, { time: first, waiting: true });
      return 0;
    }
    let slowest = Infinity;
    for (const [other, progress] of this.partitions) if (other !== id && progress.waiting) slowest = Math.min(slowest, progress.time);
    if (slowest === Infinity) return times.length;
    for (let i = 0; i < times.length; i++) if (times.at(i)! > slowest + this.maxAheadMs) return i;
    return times.length;
  }

  /** Once the batch's first `taken` records are taken (the number `take` gave). */
  taken(batch: RecordBatch, times: EventTimes, taken: number): void {
    const id = `${batch.topic}:${batch.partition}`;
    const progress = this.partitions.get(id) ?? { time: -Infinity, waiting: true };
    for (let i = 0; i <= taken && i < times.length; i++) progress.time = Math.max(progress.time, times.at(i)!);
    const reached = BigInt(batch.lastOffset ?? batch.records.at(-1)!.offset) + 1n;
    progress.waiting = taken < times.length || (batch.highWatermark !== undefined && reached < BigInt(batch.highWatermark));
    this.partitions.set(id, progress);
  }

  /** The partitions were reassigned: where each stands is learnt again. */
  forget(): void {
    this.partitions.clear();
  }
}
