import { EventEmitter } from 'node:events';
import {
  DEFER_MS,
  recordsHandled,
  retryDelayMs,
  type CommittedOffset,
  type EventLog,
  type LogRecord,
  type OutgoingRecord,
  type PartitionCommit,
  type PartitionOffsets,
  type RecordBatch,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
} from './types.js';

const DEFAULT_PARTITIONS = 4;
const MAX_BATCH = 500;
/** Records published to a partition between two looks for records every group has committed past. */
const TRIM_EVERY = 1024;

/** A partition's records from offset `base` on (those before it let go). */
interface Partition {
  base: number;
  records: LogRecord[];
  /** Records published since the last look for records to let go. */
  sinceTrim: number;
}

const endOf = (log: Partition) => log.base + log.records.length;

export interface MemoryEventLogOptions {
  /**
   * Let go of the records of a partition that every consumer group that has subscribed to its
   * topic has committed past (none is lost to a group; a topic no group reads keeps all), as a
   * long-running process must: `npm start` would otherwise hold every record it ever published.
   * Off by default: tests and tools read the records back (`records`).
   */
  releaseCommitted?: boolean;
}

/** Stable partitioning of keys (FNV-1a); records without a key go round robin. */
export function partitionOf(key: string | null, partitions: number, counter: number): number {
  if (key === null) return counter % partitions;
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

interface Group {
  members: Member[];
  /** Committed next offset and metadata per `topic:partition`. */
  committed: Map<string, { offset: number; metadata: string | null }>;
  /** Where each partition's consumption stands (the fetch position). */
  positions: Map<string, number>;
}

/** A group's committed offset of a partition, with its metadata (none committed: nulls). */
function commitOf(group: Group | undefined, topic: string, partition: number): CommittedOffset {
  const committed = group?.committed.get(`${topic}:${partition}`);
  return committed ? { offset: String(committed.offset), metadata: committed.metadata } : { offset: null, metadata: null };
}

interface Member {
  options: SubscribeOptions;
  running: boolean;
  /** Where the search for the next batch starts: the slot after the one last served (round robin). */
  nextSlot: number;
  /**
   * Partitions whose batch failed or was handled in part (`topic:partition`): failures in a row (none after a batch
   * handled in part), and when they are fetched again.
   */
  retries: Map<string, { failures: number; at: number }>;
}

/** The embedded event log: Kafka's semantics held in the process, records lost on exit. */
export class MemoryEventLog implements EventLog {
  private readonly topics = new Map<string, Partition[]>();
  private readonly groups = new Map<string, Group>();
  /** The groups that have subscribed to each topic. */
  private readonly readers = new Map<string, Set<Group>>();
  private readonly wake = new EventEmitter().setMaxListeners(0);
  private counter = 0;

  constructor(private readonly options: MemoryEventLogOptions = {}) {}

  private topic(name: string, partitions = DEFAULT_PARTITIONS): Partition[] {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = Array.from({ length: partitions }, () => ({ base: 0, records: [], sinceTrim: 0 }));
      this.topics.set(name, topic);
    }
    return topic;
  }

  /** Lets go of the records before the lowest offset the topic's groups have committed (none without a group). */
  private release(topicName: string, partition: number, log: Partition): void {
    log.sinceTrim = 0;
    const groups = this.readers.get(topicName);
    if (!groups || groups.size === 0) return;
    let low = Infinity;
    for (const group of groups) low = Math.min(low, group.committed.get(`${topicName}:${partition}`)?.offset ?? -Infinity);
    const drop = Math.min(low, endOf(log)) - log.base;
    if (drop <= 0) return;
    log.records.splice(0, drop);
    log.base += drop;
  }

  async ensureTopics(topics: TopicSpec[]): Promise<TopicSpec[]> {
    for (const spec of topics) this.topic(spec.name, spec.partitions);
    return [];
  }

  async publish(topicName: string, records: OutgoingRecord[]): Promise<void> {
    const topic = this.topic(topicName);
    const now = Date.now();
    for (const record of records) {
      const partition = partitionOf(record.key, topic.length, this.counter++);
      const log = topic[partition]!;
      if (this.options.releaseCommitted && ++log.sinceTrim >= TRIM_EVERY) this.release(topicName, partition, log);
      log.records.push({
        topic: topicName,
        partition,
        offset: String(endOf(log)),
        key: record.key,
        value: Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value),
        timestamp: now,
        headers: { ...record.headers },
      });
    }
    this.wake.emit('record');
  }

  async endOffsets(topicName: string): Promise<PartitionOffsets[]> {
    return this.topic(topicName).map((log, partition) => ({ partition, start: String(log.base), end: String(endOf(log)) }));
  }

  async committedOffsets(groupId: string, topicName: string): Promise<PartitionCommit[]> {
    const group = this.groups.get(groupId);
    return this.topic(topicName).map((_, partition) => ({ partition, ...commitOf(group, topicName, partition) }));
  }

  /** Records of a topic in partition order (for tests and tools): those still held. */
  records(topicName: string): LogRecord[] {
    return (this.topics.get(topicName) ?? []).flatMap((log) => log.records);
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const group: Group = this.groups.get(options.groupId) ?? { members: [], committed: new Map(), positions: new Map() };
    this.groups.set(options.groupId, group);
    const member: Member = { options, running: true, nextSlot: 0, retries: new Map() };
    this.rebalance(group, () => group.members.push(member));
    for (const name of options.topics) {
      this.topic(name);
      if (!this.readers.has(name)) this.readers.set(name, new Set());
      this.readers.get(name)!.add(group);
    }
    // Deliveries start once subscribe has answered, as with Kafka (a handler may use its subscription).
    const loop = new Promise((resolve) => setImmediate(resolve)).then(() => this.consume(group, member));
    return {
      commit: async (offsets) => {
        for (const o of offsets)
          group.committed.set(`${o.topic}:${o.partition}`, { offset: Number(o.offset), metadata: o.metadata ?? null });
      },
      committed: async (topic, partition) => commitOf(group, topic, partition),
      rewind: async (topic, partition) => {
        group.positions.delete(`${topic}:${partition}`);
      },
      stop: async () => {
        member.running = false;
        this.wake.emit('record');
        await loop;
        this.rebalance(group, () => (group.members = group.members.filter((m) => m !== member)));
      },
    };
  }

  /** A membership change reassigns partitions: everyone resumes from the committed offsets. */
  private rebalance(group: Group, change: () => void): void {
    change();
    group.positions.clear();
    for (const member of group.members) member.retries.clear();
    for (const member of group.members) member.options.onRebalance?.();
  }

  /**
   * The next batch of the member's partitions, taken round robin from the one after the partition
   * it served last (as a Kafka fetch returns data for every partition that has some): a deep
   * backlog or a batch that keeps failing holds back none of the others.
   */
  private nextBatch(group: Group, member: Member): RecordBatch | null {
    const index = group.members.indexOf(member);
    const count = group.members.length;
    const slots = member.options.topics.flatMap((name) => this.topic(name).map((log, partition) => ({ name, partition, log })));
    for (let step = 0; step < slots.length; step++) {
      const slot = (member.nextSlot + step) % slots.length;
      if (slot % count !== index) continue;
      const { name, partition, log } = slots[slot]!;
      const id = `${name}:${partition}`;
      if ((member.retries.get(id)?.at ?? 0) > Date.now()) continue;
      const end = endOf(log);
      // An offset before the records held (let go while no group of this one had committed) starts at the first held.
      const asked = group.positions.get(id) ?? group.committed.get(id)?.offset ?? (member.options.fromBeginning ? log.base : end);
      const start = Math.max(asked, log.base);
      group.positions.set(id, start);
      if (start < end) {
        member.nextSlot = slot + 1;
        const from = start - log.base;
        return { topic: name, partition, records: log.records.slice(from, from + MAX_BATCH), highWatermark: String(end) };
      }
    }
    return null;
  }

  private async consume(group: Group, member: Member): Promise<void> {
    while (member.running) {
      const batch = this.nextBatch(group, member);
      if (!batch) {
        await this.waitForWork(member);
        continue;
      }
      const id = `${batch.topic}:${batch.partition}`;
      const position = group.positions.get(id);
      try {
        const handled = recordsHandled(batch, await member.options.eachBatch(batch));
        if (handled > 0) {
          const next = Number(batch.records[handled - 1]!.offset) + 1;
          // A rebalance during the batch has reset the positions: keep theirs.
          if (group.positions.get(id) === position) group.positions.set(id, next);
          if (member.options.autoCommit ?? true) group.committed.set(id, { offset: next, metadata: null });
        }
        if (handled < batch.records.length) member.retries.set(id, { failures: 0, at: Date.now() + DEFER_MS });
        else member.retries.delete(id);
      } catch (error) {
        member.options.onError?.(error);
        const failures = (member.retries.get(id)?.failures ?? 0) + 1;
        member.retries.set(id, { failures, at: Date.now() + retryDelayMs(failures) });
      }
      // Let producers and other consumers run between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Until a record is published, or the earliest retry of a partition that failed or was deferred is due. */
  private async waitForWork(member: Member): Promise<void> {
    const due = Math.min(...[...member.retries.values()].map((retry) => retry.at));
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = Number.isFinite(due)
        ? setTimeout(
            () => {
              this.wake.off('record', wake);
              resolve();
            },
            Math.max(0, due - Date.now()),
          )
        : undefined;
      this.wake.once('record', wake);
    });
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    for (const group of this.groups.values()) for (const member of group.members) member.running = false;
    this.wake.emit('record');
  }
}
