/**
 * The scenarios' side of Kafka: publishing that rides out a broker outage (so that what a
 * scenario produced is known exactly), and reading a whole topic back (the verifiers work
 * from what is on the log, not from what was meant to be sent).
 */
import kafkajs from 'kafkajs';
import type { DeadLetter, LogRecord, OutgoingRecord } from '@tributary/shared';
import { waitFor } from '../../support/wait-for.js';

const { Kafka, logLevel } = kafkajs;

function client(brokers: string[], clientId: string) {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 200 } });
}

/** A producer whose `publish` retries until the records are acknowledged (a broker may be down for a while). */
export class Publisher {
  private readonly producer;
  private connected: Promise<void> | null = null;
  /** Records acknowledged by the broker. */
  acked = 0;
  /** Sends that failed and were retried (a retried send may have been written once already). */
  retries = 0;

  constructor(brokers: string[], clientId: string) {
    this.producer = client(brokers, clientId).producer({ allowAutoTopicCreation: true });
  }

  async publish(topic: string, records: OutgoingRecord[], deadlineMs = 180_000): Promise<void> {
    if (records.length === 0) return;
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        this.connected ??= this.producer.connect();
        await this.connected;
        await this.producer.send({
          topic,
          acks: -1,
          messages: records.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
        });
        this.acked += records.length;
        return;
      } catch (error) {
        this.connected = null;
        this.retries++;
        if (Date.now() > deadline) throw new Error(`publishing to ${topic} failed for ${deadlineMs} ms`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined);
  }
}

export interface TopicContents {
  /** Each partition's records in offset order. */
  partitions: LogRecord[][];
  /** Records on the topic. */
  count: number;
  /** Partitions whose oldest records the broker had already removed (their offsets do not start at 0). */
  truncated: number[];
}

/** Reads every record of `topic` present now (up to the end offsets at the time of the call). */
export async function readTopic(brokers: string[], topic: string, timeoutMs = 120_000): Promise<TopicContents> {
  const kafka = client(brokers, `faults-read-${process.pid}`);
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const partitions: LogRecord[][] = offsets.map(() => []);
  const truncated = offsets.filter((o) => BigInt(o.low) > 0n).map((o) => o.partition);
  /** Per partition: the end offset to read up to, and the next offset wanted. */
  const ends = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  const next = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  const remaining = () => offsets.filter((o) => next.get(o.partition)! < ends.get(o.partition)!).length;
  if (remaining() > 0) {
    const consumer = kafka.consumer({
      groupId: `faults-read-${topic}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      maxWaitTimeInMs: 100,
      sessionTimeout: 30_000,
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const end = ends.get(batch.partition)!;
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset >= end) break;
          if (offset < next.get(batch.partition)!) continue;
          partitions[batch.partition]!.push({
            topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key ? m.key.toString() : null,
            value: m.value,
            timestamp: Number(m.timestamp),
            headers: {},
          });
          next.set(batch.partition, offset + 1n);
        }
      },
    });
    try {
      await waitFor(() => remaining() === 0, { timeoutMs, intervalMs: 100, what: `reading ${topic} to its end` });
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
  }
  return { partitions, count: partitions.reduce((n, p) => n + p.length, 0), truncated };
}

/** The dead letters on a topic, by the place of the record they set aside (`topic:partition:offset`; a replay may repeat one). */
export async function readDeadLetters(brokers: string[], topic: string): Promise<{ letters: Map<string, DeadLetter>; records: number }> {
  const contents = await readTopic(brokers, topic);
  const letters = new Map<string, DeadLetter>();
  for (const record of contents.partitions.flat()) {
    const letter = JSON.parse(record.value!.toString()) as DeadLetter;
    letters.set(`${letter.source.topic}:${letter.source.partition}:${letter.source.offset}`, letter);
  }
  return { letters, records: contents.count };
}

/** The partitions of `topic` each broker leads, by broker id. */
export async function partitionsLedBy(brokers: string[], topic: string): Promise<Map<number, number[]>> {
  const admin = client(brokers, `faults-meta-${process.pid}`).admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const led = new Map<number, number[]>();
    for (const p of metadata.topics[0]?.partitions ?? []) led.set(p.leader, [...(led.get(p.leader) ?? []), p.partitionId]);
    return led;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Records ever appended to a topic created for the run (the sum of its partitions' end
 * offsets): the mock broker trims a partition's oldest records beyond a few megabytes, so
 * what it still holds may be fewer.
 */
export async function appended(brokers: string[], topic: string): Promise<number> {
  const admin = client(brokers, `faults-size-${process.pid}`).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, o) => n + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}
