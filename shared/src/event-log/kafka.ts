import { isUtf8 } from 'node:buffer';
import kafkajs from 'kafkajs';
import type { Admin, Consumer, Kafka as KafkaClient, KafkaConfig, Producer } from 'kafkajs';
import { fixKafkajsIdleLoop } from './kafkajs-idle-loop.js';
import {
  DEFER_MS,
  recordsHandled,
  retryDelayMs,
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

const { Kafka, logLevel } = kafkajs;
fixKafkajsIdleLoop();

/** A partition paused after its batch failed, or was handled in part, until it is fetched again. */
interface Retry {
  /** Its batches that failed in a row (none after a batch handled in part). */
  failures: number;
  timer: NodeJS.Timeout | null;
  resume: () => void;
}

export interface KafkaEventLogOptions {
  brokers: string[];
  clientId: string;
  /** Extra kafkajs settings (ssl, sasl, ...). */
  kafka?: Partial<KafkaConfig>;
  /** How long a fetch waits for records (100 ms by default); a broker that holds a fetch that long adds it to freshness. */
  maxWaitTimeInMs?: number;
  sessionTimeout?: number;
}

type KafkaHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

/** No prototype: a header may be named `__proto__` (kafkajs keeps it as an own property; assigned to `{}`, it would be lost). */
const noPrototype = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

/**
 * A header's values as kafkajs decodes them: one, or an array when the name is repeated. Only bytes and text count:
 * kafkajs decodes a header named `__proto__` as `[Object.prototype, <its value>]` (it looks the name up on a plain
 * object to tell a repeated name), which must not reach `Buffer.from`.
 */
function valuesOf(value: KafkaHeaders[string]): (Buffer | string)[] {
  return (Array.isArray(value) ? value : [value]).filter((v): v is Buffer | string => Buffer.isBuffer(v) || typeof v === 'string');
}

/**
 * A record's headers: each one's (first) value as text, and, only when that text does not hold them exactly (a value
 * that is not UTF-8, a name repeated), every value as bytes. One pass over the names.
 */
function readHeaders(headers: KafkaHeaders | undefined): Pick<LogRecord, 'headers' | 'headerBytes'> {
  const text = noPrototype<string>();
  if (headers === undefined) return { headers: text };
  let exact = true;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (typeof value === 'string') text[name] = value;
    else if (Buffer.isBuffer(value)) {
      text[name] = value.toString();
      if (exact && !isUtf8(value)) exact = false;
    } else if (Array.isArray(value)) {
      const first = valuesOf(value)[0];
      if (first !== undefined) text[name] = first.toString();
      exact = false;
    }
  }
  if (exact) return { headers: text };
  const bytes = noPrototype<Buffer[]>();
  for (const name of Object.keys(headers)) {
    const values = valuesOf(headers[name]);
    if (values.length > 0) bytes[name] = values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)));
  }
  return { headers: text, headerBytes: bytes };
}

/** The event log on Kafka, through kafkajs. */
export class KafkaEventLog implements EventLog {
  private readonly kafka: KafkaClient;
  private producer: Producer | null = null;
  private producerReady: Promise<Producer> | null = null;
  /** Each running consumer with the signal its batches carry (`RecordBatch.stopping`), aborted before it disconnects. */
  private readonly consumers = new Map<Consumer, AbortController>();
  /** Calls of `close` so far: a consumer that was connecting or joining meanwhile is let go, not left running. */
  private closes = 0;

  constructor(private readonly options: KafkaEventLogOptions) {
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      logLevel: logLevel.ERROR,
      retry: { initialRetryTime: 200, retries: 8 },
      ...options.kafka,
    });
  }

  private connectProducer(): Promise<Producer> {
    this.producerReady ??= (async () => {
      const producer = this.kafka.producer({ allowAutoTopicCreation: true });
      await producer.connect();
      this.producer = producer;
      return producer;
    })().catch((error: unknown) => {
      this.producerReady = null;
      throw error;
    });
    return this.producerReady;
  }

  async publish(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    const producer = await this.connectProducer();
    await producer.send({
      topic,
      acks: -1,
      messages: records.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
    });
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const consumer = this.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: this.options.sessionTimeout ?? 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: this.options.maxWaitTimeInMs ?? 100,
      allowAutoTopicCreation: true,
    });
    const stopping = new AbortController();
    /** Ends the waits of its batches first: kafkajs's disconnect waits for the batch in hand. */
    const letGo = () => {
      this.consumers.delete(consumer);
      stopping.abort();
      return consumer.disconnect();
    };
    const closesBefore = this.closes;
    /** After each wait: a `close` meanwhile found no consumer to stop yet (or one kafkajs may reconnect), so this one stops. */
    const stopIfClosed = async () => {
      if (this.closes === closesBefore) return;
      await letGo().catch(() => undefined);
      throw new Error(`the event log was closed while the consumer of group ${options.groupId} was starting`);
    };
    await consumer.connect();
    await stopIfClosed();
    this.consumers.set(consumer, stopping);
    await consumer.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning });
    consumer.on(consumer.events.CRASH, (event) => options.onError?.(event.payload.error));
    // Committed offsets, fetched once per topic and assignment (partitions are opened one by one).
    let committedOffsets = new Map<string, Promise<PartitionCommit[]>>();
    /**
     * A batch whose handler fails is not handed back to kafkajs, which would stop the fetches from every broker,
     * retry, and after a few retries restart the consumer, rejoining the group (a rebalance for every member;
     * tulios/kafkajs#587). Its partition is paused instead, and fetched again after a backoff while the others go
     * on. The batch's offsets were not resolved, so the partition's next fetch starts at its first record. A batch
     * handled in part pauses its partition likewise, for `DEFER_MS`, its offsets resolved up to the last record handled.
     */
    const retries = new Map<string, Retry>();
    /** A new assignment starts every partition from its commit; a stopped consumer retries nothing. */
    const forgetRetries = () => {
      for (const retry of retries.values()) {
        if (retry.timer) clearTimeout(retry.timer);
        retry.resume();
      }
      retries.clear();
    };
    consumer.on(consumer.events.DISCONNECT, forgetRetries);
    consumer.on(consumer.events.GROUP_JOIN, () => {
      forgetRetries();
      committedOffsets = new Map();
      options.onRebalance?.();
    });
    if (options.emptyBatches) {
      // kafkajs resolves a fetch of only transaction markers or aborted records itself, without eachBatch, and
      // reports it (with no records) as a batch processed.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.batchSize !== 0) return;
        const batch = { topic: payload.topic, partition: payload.partition, records: [], lastOffset: payload.lastOffset };
        options.eachBatch({ ...batch, highWatermark: payload.highWatermark }).catch((error: unknown) => options.onError?.(error));
      });
    }
    const autoCommit = options.autoCommit ?? true;
    await consumer.run({
      autoCommit,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.concurrentPartitions ?? 1,
      eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale, pause }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        const id = `${batch.topic}:${batch.partition}`;
        const records: LogRecord[] = batch.messages.map((m) => {
          const record: LogRecord = {
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key ? m.key.toString() : null,
            value: m.value,
            timestamp: Number(m.timestamp),
            ...readHeaders(m.headers),
          };
          if (m.key && !isUtf8(m.key)) record.keyBytes = m.key;
          return record;
        });
        /** Pauses the partition for `delayMs`: its next fetch then starts after the last offset resolved. */
        const fetchAgainAfter = (delayMs: number, failures: number) => {
          const previous = retries.get(id);
          if (previous?.timer) clearTimeout(previous.timer);
          const retry: Retry = { failures, timer: null, resume: pause() };
          retry.timer = setTimeout(() => {
            retry.timer = null;
            retry.resume();
          }, delayMs);
          retries.set(id, retry);
        };
        const recordBatch: RecordBatch = {
          topic: batch.topic,
          partition: batch.partition,
          records,
          highWatermark: batch.highWatermark,
          lastOffset: batch.lastOffset(),
          heartbeat,
          stopping: stopping.signal,
        };
        let handled: number;
        try {
          handled = recordsHandled(recordBatch, await options.eachBatch(recordBatch));
        } catch (error) {
          options.onError?.(error);
          const failures = (retries.get(id)?.failures ?? 0) + 1;
          fetchAgainAfter(retryDelayMs(failures), failures);
          return;
        }
        if (handled < records.length) {
          if (handled > 0) resolveOffset(records[handled - 1]!.offset);
          fetchAgainAfter(DEFER_MS, 0);
        } else {
          retries.delete(id);
          resolveOffset(batch.lastOffset());
        }
        if (autoCommit) await commitOffsetsIfNecessary();
        await heartbeat();
      },
    });
    await stopIfClosed();
    const committed: Subscription['committed'] = async (topic, partition) => {
      let offsets = committedOffsets.get(topic);
      if (!offsets) {
        offsets = this.committedOffsets(options.groupId, topic);
        offsets.catch(() => committedOffsets.delete(topic));
        committedOffsets.set(topic, offsets);
      }
      const found = (await offsets).find((p) => p.partition === partition);
      return found ? { offset: found.offset, metadata: found.metadata } : { offset: null, metadata: null };
    };
    return {
      commit: async (offsets) => {
        await consumer.commitOffsets(
          offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset, metadata: o.metadata ?? null })),
        );
      },
      committed,
      rewind: async (topic, partition) => {
        // Read anew: the commits made since the assignment count.
        committedOffsets.delete(topic);
        let { offset } = await committed(topic, partition);
        if (offset === null) {
          const ends = (await this.endOffsets(topic)).find((p) => p.partition === partition);
          if (!ends) throw new Error(`partition ${topic}:${partition} not found`);
          offset = options.fromBeginning ? ends.start : ends.end;
        }
        // Applied at the partition's next fetch (a paused partition's too): the batches fetched before are stale.
        consumer.seek({ topic, partition, offset });
      },
      stop: letGo,
    };
  }

  private adminReady: Promise<Admin> | null = null;

  private connectAdmin(): Promise<Admin> {
    this.adminReady ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      return admin;
    })().catch((error: unknown) => {
      this.adminReady = null;
      throw error;
    });
    return this.adminReady;
  }

  /**
   * Creates the missing topics with their partition counts (topics that exist are left as they
   * are). A cluster may refuse (ACLs, or no controller, as librdkafka's mock cluster): a topic is
   * then created on first use, with the broker's default partition count; those created so with
   * another count than asked are returned, with the count found.
   */
  async ensureTopics(topics: TopicSpec[]): Promise<TopicSpec[]> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t.name));
      if (missing.length === 0) return [];
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((t) => ({ topic: t.name, numPartitions: t.partitions })),
        });
        return [];
      } catch {
        // Asking for their metadata creates them where the cluster creates topics on first use.
        const metadata = await admin.fetchTopicMetadata({ topics: missing.map((t) => t.name) }).catch(() => null);
        return missing.flatMap(({ name, partitions }) => {
          const found = metadata?.topics.find((t) => t.name === name)?.partitions.length;
          return found === undefined || found === partitions ? [] : [{ name, partitions: found }];
        });
      }
    } finally {
      await admin.disconnect();
    }
  }

  async endOffsets(topic: string): Promise<PartitionOffsets[]> {
    const admin = await this.connectAdmin();
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.map((o) => ({ partition: o.partition, start: o.low, end: o.high })).sort((a, b) => a.partition - b.partition);
  }

  async committedOffsets(groupId: string, topic: string): Promise<PartitionCommit[]> {
    const admin = await this.connectAdmin();
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return (entry?.partitions ?? [])
      .map((p) =>
        // -1: the group has committed none.
        p.offset === '-1'
          ? { partition: p.partition, offset: null, metadata: null }
          : { partition: p.partition, offset: p.offset, metadata: p.metadata ?? null },
      )
      .sort((a, b) => a.partition - b.partition);
  }

  async ping(): Promise<void> {
    const admin = await this.connectAdmin();
    await admin.listTopics();
  }

  async close(): Promise<void> {
    this.closes++;
    await Promise.allSettled(
      [...this.consumers].map(([consumer, stopping]) => {
        stopping.abort();
        return consumer.disconnect();
      }),
    );
    this.consumers.clear();
    if (this.producer) await this.producer.disconnect().catch(() => undefined);
    const admin = this.adminReady;
    this.adminReady = null;
    if (admin) await admin.then((a) => a.disconnect()).catch(() => undefined);
    this.producer = null;
    this.producerReady = null;
  }
}
