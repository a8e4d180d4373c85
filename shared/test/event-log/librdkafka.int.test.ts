import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { librdkafkaSecurity } from '../../src/connections.js';
import { KafkaEventLog } from '../../src/event-log/kafka.js';
import { LibrdkafkaProducer, librdkafka } from '../../src/event-log/librdkafka.js';
import type { LogRecord, Subscription } from '../../src/event-log/types.js';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';

const services = realServices();
const loaded = librdkafka();
const missing = !services.kafkaBrokers ? services.missing('kafka') : loaded instanceof Error ? loaded.message : undefined;

// Without the broker or the library these tests are reported skipped, with the reason; CI
// fails on any skipped integration test.
describe.skipIf(missing !== undefined)(`the librdkafka producer${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const closing: { close(): Promise<void> }[] = [];
  const subscriptions: Subscription[] = [];
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
    await Promise.all(closing.splice(0).map((c) => c.close()));
  });

  const consume = async (log: KafkaEventLog, topic: string) => {
    const received: LogRecord[] = [];
    const subscription = await log.subscribe({
      groupId: uniqueName('group'),
      topics: [topic],
      fromBeginning: true,
      eachBatch: async (batch) => {
        received.push(...batch.records);
      },
    });
    subscriptions.push(subscription);
    return received;
  };

  it('delivers every record once, each on the partition kafkajs gives its key', async () => {
    const producer = new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test', sessionTimeout: 6_000 });
    closing.push(producer, log);
    const [ours, theirs] = [uniqueName('librdkafka'), uniqueName('kafkajs')];
    const records = Array.from({ length: 1_200 }, (_, i) => ({
      key: `request-${i % 400}`,
      value: JSON.stringify({ i, text: 'é'.repeat(i % 7) }),
    }));
    await log.publish(theirs, records.slice(0, 1));
    await Promise.all([producer.publish(ours, records.slice(0, 500)), producer.publish(ours, records.slice(500))]);
    // A batch settles once its records are on the broker, not when they were handed over.
    const onBroker = async (topic: string) => (await log.endOffsets(topic)).reduce((sum, p) => sum + Number(p.end), 0);
    expect(await onBroker(ours)).toBe(1_200);
    await log.publish(theirs, records.slice(1));
    const [received, reference] = [await consume(log, ours), await consume(log, theirs)];
    await waitFor(() => received.length >= 1_200 && reference.length >= 1_200, { timeoutMs: 30_000, what: '1,200 records on each topic' });

    const partitionOf = new Map(reference.map((r) => [r.key, r.partition]));
    expect(new Set(reference.map((r) => r.partition)).size).toBeGreaterThan(1);
    const seen = new Map<number, string>();
    for (const record of received) {
      const value = record.value!.toString();
      const { i } = JSON.parse(value) as { i: number };
      expect(seen.has(i)).toBe(false);
      seen.set(i, value);
      expect(record.key).toBe(records[i]!.key);
      expect(value).toBe(records[i]!.value);
      expect(record.partition).toBe(partitionOf.get(record.key));
    }
    expect(seen.size).toBe(1_200);
    // In order per key: one batch after the other.
    const orderOfKey = new Map<string | null, number>();
    for (const record of [...received].sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset))) {
      const { i } = JSON.parse(record.value!.toString()) as { i: number };
      expect(i).toBeGreaterThan(orderOfKey.get(record.key) ?? -1);
      orderOfKey.set(record.key, i);
    }
  });

  it('sends each record its own bytes: texts of any length and alphabet, byte values, no key', async () => {
    const producer = new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test', sessionTimeout: 6_000 });
    closing.push(producer, log);
    const topic = uniqueName('librdkafka-bytes');
    // Longer and shorter texts after one another, in batches of growing size; characters of 1 to 4 bytes.
    const batches = [
      [
        { key: 'k-long-key-'.repeat(20), value: 'a'.repeat(300) },
        { key: 'k', value: 'b' },
        { key: null, value: '€𝄞ü'.repeat(50) },
      ],
      [
        { key: 'k2', value: Buffer.from([0, 255, 1, 254]) },
        { key: '𝄞'.repeat(100), value: 'x'.repeat(200_000) },
        { key: 'k3', value: '' },
      ],
    ];
    for (const batch of batches) await producer.publish(topic, batch);
    const received = await consume(log, topic);
    await waitFor(() => received.length >= 6, { timeoutMs: 30_000, what: '6 records' });
    const sent = batches.flat();
    const bytes = (value: string | Buffer) => (typeof value === 'string' ? Buffer.from(value) : value);
    const got = received.map((r) => ({ key: r.key, value: r.value ?? Buffer.alloc(0) }));
    expect(got).toHaveLength(6);
    for (const record of sent) {
      expect(got.some((r) => r.key === record.key && r.value.equals(bytes(record.value)))).toBe(true);
    }
  });

  it('rejects a batch its broker never took, with the reason, and reports the broker down', async () => {
    const problems: string[] = [];
    const producer = new LibrdkafkaProducer({
      brokers: ['127.0.0.1:1'],
      clientId: 'librdkafka-test',
      deliveryTimeoutMs: 1_500,
      onProblem: (message) => problems.push(message),
    });
    closing.push(producer);
    await expect(producer.publish('predictions', [{ key: 'a', value: 'b' }])).rejects.toThrow(/delivery failed: .*timed out/i);
    expect(problems.join('\n')).toMatch(/127\.0\.0\.1:1/);
    // The producer keeps working for the next batch (which fails the same way here).
    await expect(producer.publish('predictions', [{ key: 'a', value: 'c' }])).rejects.toThrow(/delivery failed/);
  });

  it('abandons at once, failing the batch in flight and refusing the one queued, where closing waits for their deliveries', async () => {
    // The default delivery timeout (30 s): only the purge can settle this batch in time.
    const producer = new LibrdkafkaProducer({ brokers: ['127.0.0.1:1'], clientId: 'librdkafka-test' });
    const outcome = (sent: Promise<void>) =>
      sent.then(
        () => 'delivered',
        (error: Error) => error.message,
      );
    const inFlight = outcome(producer.publish('predictions', [{ key: 'a', value: 'b' }]));
    const queued = outcome(producer.publish('predictions', [{ key: 'a', value: 'c' }]));
    // The first batch is produced a microtask later; the second waits for its deliveries.
    await new Promise((resolve) => setImmediate(resolve));
    await producer.abandon();
    expect(await inFlight).toMatch(/delivery failed: .*purged/i);
    expect(await queued).toMatch(/closed before this batch was sent/);
    await producer.abandon();
  });

  it('takes the TLS and SASL settings of the configuration', async () => {
    const config = loadConfig({
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: 'p',
    });
    const properties = librdkafkaSecurity(config);
    expect(properties['security.protocol']).toBe('sasl_ssl');
    let producer: LibrdkafkaProducer | undefined;
    // librdkafka checks each property, and builds its TLS context, when the producer is made.
    expect(() => (producer = new LibrdkafkaProducer({ brokers: ['127.0.0.1:1'], clientId: 'librdkafka-test', properties }))).not.toThrow();
    await producer?.close();
  });

  it('a batch refused before any record left takes no report from the next one', async () => {
    const producer = new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    closing.push(producer, log);
    const topic = uniqueName('librdkafka');
    await producer.publish(topic, [{ key: 'a', value: 'first' }]);
    // The third value cannot be encoded: the batch rejects, and none of its records is produced.
    const bad = [
      { key: 'a', value: 'x' },
      { key: 'b', value: 'y' },
      { key: 'c', value: 42 as unknown as string },
    ];
    await expect(producer.publish(topic, bad)).rejects.toThrow(/must be of type string/);
    const good = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
    await producer.publish(topic, good);
    expect((await log.endOffsets(topic)).reduce((sum, p) => sum + Number(p.end), 0)).toBe(51);
  });

  it('closes once when closed twice at the same time, and refuses settings under which a batch never settles', async () => {
    const producer = new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    await producer.publish(uniqueName('librdkafka'), [{ key: 'a', value: 'b' }]);
    await Promise.all([producer.close(), producer.close()]);
    await expect(producer.publish('predictions', [{ key: 'a', value: 'b' }])).rejects.toThrow(/closed/);
    const brokers = services.kafkaBrokers!;
    expect(() => new LibrdkafkaProducer({ brokers, clientId: 'x', deliveryTimeoutMs: 0 })).toThrow(/wait forever/);
    expect(() => new LibrdkafkaProducer({ brokers, clientId: 'x', properties: { 'delivery.report.only.error': 'true' } })).toThrow(
      /never come/,
    );
  });

  it('names a property librdkafka refuses, and refuses batches once closed', async () => {
    expect(
      () => new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'x', properties: { 'no.such.property': '1' } }),
    ).toThrow(/librdkafka: .*no\.such\.property/);
    const producer = new LibrdkafkaProducer({ brokers: services.kafkaBrokers!, clientId: 'librdkafka-test' });
    await expect(producer.publish(uniqueName('librdkafka'), [{ key: 'a', value: 'b', headers: { h: 'v' } }])).rejects.toThrow(/headers/);
    await producer.close();
    await expect(producer.publish('predictions', [{ key: 'a', value: 'b' }])).rejects.toThrow(/closed/);
  });
});
