import kafkajs from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import { openTopic } from '../../src/event-log/read-topic.js';
import type { LogRecord, Subscription } from '../../src/event-log/types.js';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';

const services = realServices();
const missing = services.kafkaBrokers ? undefined : services.missing('kafka');

// Without the broker these tests are reported skipped, with the reason; CI fails on any skipped integration test.
describe.skipIf(missing !== undefined)(`Kafka event log${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const closing: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const c of closing.splice(0).reverse()) await c.close();
    vi.restoreAllMocks();
  });

  /** The group joins of every kafkajs consumer made from now on (the member id of each), and their crashes. */
  const watchConsumers = () => {
    const seen = { joins: [] as string[], crashes: 0 };
    const consumer = kafkajs.Kafka.prototype.consumer;
    vi.spyOn(kafkajs.Kafka.prototype, 'consumer').mockImplementation(function (this: kafkajs.Kafka, config) {
      const created = consumer.call(this, config);
      created.on(created.events.GROUP_JOIN, (event) => seen.joins.push(event.payload.memberId));
      created.on(created.events.CRASH, () => seen.crashes++);
      return created;
    });
    return seen;
  };

  it('creates a topic with the partitions asked, or returns it with the count the cluster gave it instead', async () => {
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'topics-test' });
    closing.push(log);
    // Not 4: the partitions of a topic librdkafka's mock cluster creates on first use, when it refuses the admin API's request.
    const topic = uniqueName('partitions');
    const otherCounts = await log.ensureTopics([{ name: topic, partitions: 3 }]);
    const partitions = (await log.endOffsets(topic)).length;
    expect(otherCounts).toEqual(partitions === 3 ? [] : [{ name: topic, partitions }]);
    // Existing topics are left as they are, whatever count is asked.
    expect(await log.ensureTopics([{ name: topic, partitions: 5 }])).toEqual([]);
  });

  it('a partition whose batches keep failing makes the consumer neither crash nor rejoin its group', async () => {
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'retry-test', sessionTimeout: 6_000 });
    closing.push(log);
    const consumers = watchConsumers();
    const topic = uniqueName('retry');
    const groupId = uniqueName('group');
    await log.ensureTopics([{ name: topic, partitions: 4 }]);
    await log.publish(
      topic,
      Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
    );
    let failing: number | null = null;
    const failures: unknown[] = [];
    const errors: unknown[] = [];
    let rebalances = 0;
    const subscription: Subscription = await log.subscribe({
      groupId,
      topics: [topic],
      fromBeginning: true,
      onError: (error) => errors.push(error),
      onRebalance: () => rebalances++,
      eachBatch: async (batch) => {
        failing ??= batch.partition;
        if (batch.partition !== failing) return;
        const error = new Error('poison batch');
        failures.push(error);
        throw error;
      },
    });
    closing.push({ close: () => subscription.stop() });
    // kafkajs restarts a consumer whose fetches failed six times in a row (its first try and five retries), which
    // then joins the group again as a new member: one more failure comes only after that.
    await waitFor(() => failures.length >= 7, { timeoutMs: 30_000, what: 'seven failures in a row' });
    expect(consumers.crashes).toBe(0);
    expect(consumers.joins).toHaveLength(1);
    expect(rebalances).toBe(1);
    // Only the handler's failures were reported: no consumer crash.
    expect(errors).toEqual(failures);
  }, 60_000);

  /**
   * Sends `messages` with a plain kafkajs producer (which sends keys and headers as bytes, as other clients may),
   * consumes them through the event log, and answers each record by its value (the broker may have given the
   * topic more than one partition, and their order across partitions is not fixed: see the first test).
   */
  async function sendAndConsume(name: string, messages: kafkajs.Message[]): Promise<Map<string, LogRecord>> {
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: `${name}-test` });
    closing.push(log);
    const topic = uniqueName(name);
    await log.ensureTopics([{ name: topic, partitions: 1 }]);
    const producer = new kafkajs.Kafka({ brokers: services.kafkaBrokers!, clientId: `${name}-producer` }).producer();
    await producer.connect();
    closing.push({ close: () => producer.disconnect() });
    await producer.send({ topic, messages });
    const records: LogRecord[] = [];
    const subscription = await log.subscribe({
      groupId: uniqueName('group'),
      topics: [topic],
      fromBeginning: true,
      eachBatch: async (batch) => void records.push(...batch.records),
    });
    closing.push({ close: () => subscription.stop() });
    await waitFor(() => records.length === messages.length, { timeoutMs: 30_000, what: `the ${messages.length} records` });
    return new Map(records.map((r) => [r.value!.toString(), r]));
  }

  it('hands a key that is not UTF-8 text over with its bytes (keyBytes), a UTF-8 key as text alone', async () => {
    const binary = Buffer.from([0x75, 0xff, 0xfe, 0x00, 0xc3, 0x28]);
    const records = await sendAndConsume('keys', [
      { key: binary, value: 'a' },
      { key: 'café', value: 'b' },
    ]);
    const [bytes, text] = [records.get('a'), records.get('b')];
    expect(bytes!.keyBytes?.equals(binary)).toBe(true);
    expect(bytes!.key).toBe(binary.toString());
    expect(text).toMatchObject({ key: 'café' });
    expect(text!.keyBytes).toBeUndefined();
  }, 60_000);

  it('hands headers over as text, and with their bytes (headerBytes) when text would not hold them exactly', async () => {
    const binary = Buffer.from([0xff, 0x00, 0xc3]);
    const records = await sendAndConsume('headers', [
      { key: 'k', value: 'text', headers: { traceparent: '00-abc-01', tenant: 'café' } },
      { key: 'k', value: 'bytes', headers: { id: binary, tag: ['a', 'b'] } },
      // A header named `__proto__` (an own property of the headers, as a parsed JSON body gives it).
      { key: 'k', value: 'proto', headers: JSON.parse('{"__proto__": "p", "traceparent": "00-abc-01"}') as kafkajs.IHeaders },
    ]);
    const [text, bytes, proto] = [records.get('text')!, records.get('bytes')!, records.get('proto')!];
    expect(text.headers).toEqual({ traceparent: '00-abc-01', tenant: 'café' });
    expect(text.headerBytes).toBeUndefined();
    expect(bytes.headers).toEqual({ id: binary.toString(), tag: 'a' });
    expect(bytes.headerBytes).toEqual({ id: [binary], tag: [Buffer.from('a'), Buffer.from('b')] });
    // kafkajs decodes it as [Object.prototype, its value] (it took the name for one given before): the value is kept,
    // and the consumer goes on (turning that prototype into bytes crashed it).
    expect(Object.entries(proto.headers)).toEqual([
      ['__proto__', 'p'],
      ['traceparent', '00-abc-01'],
    ]);
    expect(Object.entries(proto.headerBytes!)).toEqual([
      ['__proto__', [Buffer.from('p')]],
      ['traceparent', [Buffer.from('00-abc-01')]],
    ]);
  }, 60_000);

  it('lets go of a consumer still starting when its event log is closed: the subscription fails, nothing is consumed', async () => {
    const consumers = watchConsumers();
    const topic = uniqueName('closed-while-starting');
    const publisher = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'closing-publisher' });
    closing.push(publisher);
    await publisher.ensureTopics([{ name: topic, partitions: 2 }]);
    await publisher.publish(topic, [{ key: 'k', value: 'before' }]);
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'closing-test', sessionTimeout: 6_000 });
    let delivered = 0;
    const subscribing = log.subscribe({
      groupId: uniqueName('group'),
      topics: [topic],
      fromBeginning: true,
      eachBatch: async (batch) => void (delivered += batch.records.length),
    });
    await log.close();
    await expect(subscribing).rejects.toThrow();
    // Longer than a group's first join (~3 s): a consumer left running would have joined and read the record.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(consumers.joins).toEqual([]);
    expect(delivered).toBe(0);
  }, 30_000);

  it('a topic opened now and read after the session timeout is read by one member that heartbeats meanwhile, not rejoined', async () => {
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'open-topic-test', sessionTimeout: 6_000 });
    closing.push(log);
    const consumers = watchConsumers();
    const topics = [uniqueName('opened-a'), uniqueName('opened-b')];
    // One partition: its broker's fetch loop, the one that heartbeats, is held by the waiting batch (kafkajs fetches
    // from each broker apart; with the partitions on two brokers, the other's loop kept the member in the group).
    for (const topic of topics) {
      await log.ensureTopics([{ name: topic, partitions: 1 }]);
      await log.publish(
        topic,
        Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
      );
    }
    const [first, second] = [await openTopic(log, topics[0]!), await openTopic(log, topics[1]!)];
    const read = async (records: AsyncIterable<LogRecord>) => {
      const values: string[] = [];
      for await (const r of records) values.push(r.value!.toString());
      return values.sort((a, b) => Number(a) - Number(b));
    };
    const all = Array.from({ length: 20 }, (_, i) => String(i));
    expect(await read(first)).toEqual(all);
    // The second topic's first batch waits for its reader past the session timeout (6 s).
    await new Promise((resolve) => setTimeout(resolve, 9_000));
    expect(await read(second)).toEqual(all);
    expect(consumers.joins).toHaveLength(2);
    expect(consumers.crashes).toBe(0);
  }, 60_000);

  it('closes while a topic opened and never read holds its first batch (the close does not wait for the reader)', async () => {
    const consumers = watchConsumers();
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'unread-topic-test', sessionTimeout: 6_000 });
    const topic = uniqueName('unread');
    await log.ensureTopics([{ name: topic, partitions: 1 }]);
    await log.publish(topic, [{ key: 'k', value: 'waiting' }]);
    await openTopic(log, topic);
    // Joined, and its first batch handed to a reader that never comes.
    await waitFor(() => consumers.joins.length === 1, { timeoutMs: 20_000, what: 'the read to join its group' });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    let closed = false;
    const closing = log.close().then(() => (closed = true));
    await waitFor(() => closed, { timeoutMs: 15_000, what: 'the event log to close' }).finally(() => void closing);
    expect(closed).toBe(true);
  }, 60_000);
});
