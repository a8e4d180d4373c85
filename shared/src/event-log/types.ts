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
  key: string | null;
  value: Buffer | null;
  /** Broker/producer timestamp, epoch ms. */
  timestamp: number;
  headers: Record<string, string>;
}

export interface RecordBatch {
  topic: string;
  partition: number;
  records: LogRecord[];
}

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  /** Where a group with no committed offset starts. */
  fromBeginning: boolean;
  /**
   * Called with the records of one partition in offset order. The batch's offsets are
   * committed after it resolves; when it throws, the batch is delivered again.
   */
  eachBatch(batch: RecordBatch): Promise<void>;
  /** Called when a batch failed and will be retried. */
  onError?(error: unknown): void;
}

export interface Subscription {
  /** Stops consuming; resolves after the batch in flight has finished. */
  stop(): Promise<void>;
}

export interface TopicSpec {
  name: string;
  partitions: number;
}

export interface EventLog {
  publish(topic: string, records: OutgoingRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Creates missing topics; a refusal is not an error when the topic can still be used. */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
