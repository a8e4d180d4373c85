import { EventEmitter } from 'node:events';
import type { EventLog, LogRecord, OutgoingRecord, RecordBatch, SubscribeOptions, Subscription, TopicSpec } from './types.js';

const DEFAULT_PARTITIONS = 4;
const MAX_BATCH = 500;

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
  committed: Map<string, number>;
}

interface Member {
  options: SubscribeOptions;
  running: boolean;
}

/** The embedded event log: Kafka's semantics held in the process, records lost on exit. */
export class MemoryEventLog implements EventLog {
  private readonly topics = new Map<string, LogRecord[][]>();
  private readonly groups = new Map<string, Group>();
  private readonly wake = new EventEmitter().setMaxListeners(0);
  private counter = 0;

  private topic(name: string, partitions = DEFAULT_PARTITIONS): LogRecord[][] {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = Array.from({ length: partitions }, () => []);
      this.topics.set(name, topic);
    }
    return topic;
  }

  async ensureTopics(topics: TopicSpec[]): Promise<void> {
    for (const spec of topics) this.topic(spec.name, spec.partitions);
  }

  async publish(topicName: string, records: OutgoingRecord[]): Promise<void> {
    const topic = this.topic(topicName);
    const now = Date.now();
    for (const record of records) {
      const partition = partitionOf(record.key, topic.length, this.counter++);
      const log = topic[partition]!;
      log.push({
        topic: topicName,
        partition,
        offset: String(log.length),
        key: record.key,
        value: Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value),
        timestamp: now,
        headers: { ...record.headers },
      });
    }
    this.wake.emit('record');
  }

  /** Records of a topic in partition order (for tests and tools). */
  records(topicName: string): LogRecord[] {
    return (this.topics.get(topicName) ?? []).flat();
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const group = this.groups.get(options.groupId) ?? { members: [], committed: new Map<string, number>() };
    this.groups.set(options.groupId, group);
    const member: Member = { options, running: true };
    group.members.push(member);
    for (const name of options.topics) this.topic(name);
    const loop = this.consume(group, member);
    return {
      stop: async () => {
        member.running = false;
        this.wake.emit('record');
        await loop;
        group.members = group.members.filter((m) => m !== member);
      },
    };
  }

  private nextBatch(group: Group, member: Member): RecordBatch | null {
    const index = group.members.indexOf(member);
    const count = group.members.length;
    let slot = 0;
    for (const name of member.options.topics) {
      const partitions = this.topic(name);
      for (let partition = 0; partition < partitions.length; partition++, slot++) {
        if (slot % count !== index) continue;
        const log = partitions[partition]!;
        const id = `${name}:${partition}`;
        const start = group.committed.get(id) ?? (member.options.fromBeginning ? 0 : log.length);
        if (!group.committed.has(id)) group.committed.set(id, start);
        if (start < log.length) {
          return { topic: name, partition, records: log.slice(start, start + MAX_BATCH) };
        }
      }
    }
    return null;
  }

  private async consume(group: Group, member: Member): Promise<void> {
    while (member.running) {
      const batch = this.nextBatch(group, member);
      if (!batch) {
        await new Promise<void>((resolve) => this.wake.once('record', () => resolve()));
        continue;
      }
      try {
        await member.options.eachBatch(batch);
        const last = batch.records[batch.records.length - 1]!;
        group.committed.set(`${batch.topic}:${batch.partition}`, Number(last.offset) + 1);
      } catch (error) {
        member.options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Let producers and other consumers run between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    for (const group of this.groups.values()) for (const member of group.members) member.running = false;
    this.wake.emit('record');
  }
}
