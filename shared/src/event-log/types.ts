/**
 * The event log: one interface over Kafka (kafkajs) and an in-memory log with the same
 * semantics (keyed records, partitions, consumer groups with committed offsets), both run
 * through one contract test suite.
 */
export interface OutgoingRecord {
  key: string | null;
  value: string | Buffer;
  headers?: Record<string, string>;
}

export interface LogRecord {
  topic: string;
  partition: number;
  /** Kafka offsets are 64-bit: kept as decimal strings. */
  offset: string;
  /** The key as UTF-8 text (bytes that are not UTF-8 are replaced with U+FFFD: see `keyBytes`). */
  key: string | null;
  /** The key's bytes, present only when they are not UTF-8 text, so that a dead letter keeps them exactly. */
  keyBytes?: Buffer;
  value: Buffer | null;
  /** Broker/producer timestamp, epoch ms. */
  timestamp: number;
  /** Each header's (first) value as UTF-8 text: see `headerBytes`. */
  headers: Record<string, string>;
  /**
   * Every header's values as bytes, present only when `headers` does not hold them exactly (a value
   * that is not UTF-8 text, or a name given more than once), so that a dead letter keeps them.
   */
  headerBytes?: Record<string, Buffer[]>;
}

export interface RecordBatch {
  topic: string;
  partition: number;
  records: LogRecord[];
  /** The partition's end offset when fetched (for consumer lag), when known. */
  highWatermark?: string;
  /**
   * The offset of the last record the fetch reached, when known: beyond the last of `records`
   * when records that are not delivered follow it (a transaction's commit or abort marker, the
   * records of an aborted transaction).
   */
  lastOffset?: string;
  /**
   * Tells the group the consumer is alive while its handler takes long (Kafka: the handler
   * holds the consumer's loop, which otherwise heartbeats between fetches; a member silent for
   * the session timeout loses its partitions). Absent where there are no sessions (the
   * embedded log). A failure means the group is rebalancing: the batch will come again.
   */
  heartbeat?: () => Promise<void>;
  /**
   * Aborted when the subscription stops or its event log closes (Kafka: the consumer's
   * disconnect waits for the batch in hand, so a handler that waits on something else must
   * give up then). Absent where a stop does not wait for the handler (the embedded log).
   */
  stopping?: AbortSignal;
}

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  /** Where a group with no committed offset starts. */
  fromBeginning: boolean;
  /**
   * Called with the records of one partition in offset order; when it throws, the batch
   * is delivered again, before any later record of its partition, while the other
   * partitions go on (on Kafka the partition is paused, and fetched again after a backoff
   * of 100 ms that doubles with each failure in a row, up to 5 s). With `autoCommit` (the
   * default) the batch's offsets are committed after it resolves; without, the consumer
   * moves on and the caller commits with `Subscription.commit` what it has made durable.
   *
   * A handler may also take only the batch's first records and leave the others for later, resolving with how
   * many it took (`{ handled }`, fewer than the batch holds, none included): the partition's next batch then starts
   * at the first record not taken, after a pause of `DEFER_MS` while the other partitions go on. That is no failure:
   * `onError` is not called and the pause does not grow. With `autoCommit`, the records taken are committed.
   */
  eachBatch(batch: RecordBatch): Promise<void | PartlyHandled>;
  autoCommit?: boolean;
  /**
   * Batches of up to this many partitions may be handled at once (default 1); the batches
   * of one partition are always handled one after the other, in order.
   */
  concurrentPartitions?: number;
  /**
   * Also called for a fetch none of whose records is delivered (only transaction markers or
   * aborted records): `records` is then empty and `lastOffset` says how far it reached
   * (default false: such fetches are skipped). On Kafka such a call is not awaited before the
   * partition's next batch.
   */
  emptyBatches?: boolean;
  /** Called when a batch failed and will be retried. */
  onError?(error: unknown): void;
  /**
   * Called when the group's partitions were reassigned: consumption of every partition
   * resumes from its committed offset, so uncommitted progress is to be forgotten.
   */
  onRebalance?(): void;
}

/** What a batch's handler resolves with when it took only the batch's first `handled` records (see `SubscribeOptions.eachBatch`). */
export interface PartlyHandled {
  handled: number;
}

export interface CommittedOffset {
  /** The next offset to consume, or null when the group has committed none. */
  offset: string | null;
  /** The metadata committed with it. */
  metadata: string | null;
}

/** A partition's committed offset, for reading a group's offsets of a whole topic. */
export interface PartitionCommit extends CommittedOffset {
  partition: number;
}

export interface OffsetCommit {
  topic: string;
  partition: number;
  /** The next offset to consume. */
  offset: string;
  metadata?: string;
}

export interface Subscription {
  /** Commits offsets (with metadata) for the group. */
  commit(offsets: OffsetCommit[]): Promise<void>;
  /** The group's committed offset of a partition, with its metadata. */
  committed(topic: string, partition: number): Promise<CommittedOffset>;
  /**
   * Consumes a partition again from its committed offset, as after a rebalance, for a handler that has
   * dropped what it held of it (call it before failing the batch): the partition's next batch starts there.
   */
  rewind(topic: string, partition: number): Promise<void>;
  /** Stops consuming; resolves after the batch in flight has finished. */
  stop(): Promise<void>;
}

export interface TopicSpec {
  name: string;
  partitions: number;
}

/** Where a partition's records start and end, for reading a topic up to a point. */
export interface PartitionOffsets {
  partition: number;
  /** The first offset still held. */
  start: string;
  /** The offset the next record will get (the high watermark). */
  end: string;
}

export interface EventLog {
  publish(topic: string, records: OutgoingRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** The offsets of every partition of a topic now, in partition order (tools that read a topic to its current end). */
  endOffsets(topic: string): Promise<PartitionOffsets[]>;
  /**
   * A consumer group's committed offset of every partition of a topic now, in partition order
   * (read anew at each call, whoever committed it): where a member's partitions stand in the group.
   */
  committedOffsets(groupId: string, topic: string): Promise<PartitionCommit[]>;
  /**
   * Creates missing topics with their partition counts; a refusal is not an error when the topic
   * is created on first use instead. Resolves to the topics so created with another partition
   * count than asked (the count found), for the caller to say so: the count sets how far
   * consumers scale out, not what they compute.
   */
  ensureTopics(topics: TopicSpec[]): Promise<TopicSpec[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * How long a partition whose batch failed waits before it is fetched again: 100 ms, doubling
 * with each failure in a row up to 5 s (its first success starts the count again). The other
 * partitions go on meanwhile.
 */
export function retryDelayMs(failuresInARow: number): number {
  return Math.min(5_000, 100 * 2 ** (failuresInARow - 1));
}

/** How long a partition whose batch was handled in part waits before it is fetched again from its first record not handled. */
export const DEFER_MS = 100;

/** How many records of a batch its handler took: all, unless it resolved with fewer (see `SubscribeOptions.eachBatch`). */
export function recordsHandled(batch: RecordBatch, outcome: void | PartlyHandled): number {
  return outcome ? Math.max(0, Math.min(batch.records.length, outcome.handled)) : batch.records.length;
}
