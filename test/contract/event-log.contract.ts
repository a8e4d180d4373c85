/**
 * The event-log contract: keyed records, per-key order, consumer groups with committed
 * offsets, redelivery of a failed batch (while the other partitions go on). Run against the
 * in-memory log and Kafka.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventLog, LogRecord, Subscription } from '../../shared/src/index.js';
import { uniqueName, waitFor } from '../support/wait-for.js';

export function eventLogContract(name: string, makeLog: () => Promise<EventLog>, options: { timeoutMs: number }): void {
  describe(`event log contract: ${name}`, () => {
    let log: EventLog;
    const subscriptions: Subscription[] = [];
    beforeEach(async () => {
      log = await makeLog();
    });
    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
      await log.close();
    });

    const collect = async (groupId: string, topic: string, onBatch?: (records: LogRecord[]) => void) => {
      const received: LogRecord[] = [];
      const subscription = await log.subscribe({
        groupId,
        topics: [topic],
        fromBeginning: true,
        eachBatch: async (batch) => {
          onBatch?.(batch.records);
          for (const record of batch.records) {
            expect(record.topic).toBe(batch.topic);
            expect(record.partition).toBe(batch.partition);
          }
          received.push(...batch.records);
        },
      });
      subscriptions.push(subscription);
      return { received, subscription };
    };

    it(
      'delivers every record with its key, value and headers, in order per key',
      async () => {
        const topic = uniqueName('contract');
        const records = Array.from({ length: 60 }, (_, i) => ({
          key: `k${i % 5}`,
          value: JSON.stringify({ i, key: `k${i % 5}` }),
          headers: { seq: String(i) },
        }));
        await log.publish(topic, records.slice(0, 30));
        await log.publish(topic, records.slice(30));
        const { received } = await collect(uniqueName('group'), topic);
        await waitFor(() => received.length >= 60, { timeoutMs: options.timeoutMs, what: '60 records' });
        expect(received).toHaveLength(60);
        const byKey = new Map<string, number[]>();
        const partitionOfKey = new Map<string, number>();
        for (const record of received) {
          const value = JSON.parse(record.value!.toString()) as { i: number; key: string };
          expect(record.key).toBe(value.key);
          expect(record.headers.seq).toBe(String(value.i));
          byKey.set(value.key, [...(byKey.get(value.key) ?? []), value.i]);
          // One key always lands on one partition.
          expect(partitionOfKey.get(value.key) ?? record.partition).toBe(record.partition);
          partitionOfKey.set(value.key, record.partition);
        }
        for (const sequence of byKey.values()) expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
      },
      options.timeoutMs * 2,
    );

    it(
      'resumes a consumer group after its committed offsets',
      async () => {
        const topic = uniqueName('contract');
        const group = uniqueName('group');
        await log.publish(topic, [{ key: 'a', value: 'first' }]);
        const first = await collect(group, topic);
        await waitFor(() => first.received.length === 1, { timeoutMs: options.timeoutMs, what: 'the first record' });
        await first.subscription.stop();
        subscriptions.splice(subscriptions.indexOf(first.subscription), 1);
        await log.publish(topic, [{ key: 'a', value: 'second' }]);
        const second = await collect(group, topic);
        await waitFor(() => second.received.length >= 1, { timeoutMs: options.timeoutMs, what: 'the second record' });
        expect(second.received.map((r) => r.value!.toString())).toEqual(['second']);
      },
      options.timeoutMs * 3,
    );

    it(
      'gives every consumer group all records',
      async () => {
        const topic = uniqueName('contract');
        await log.publish(topic, [
          { key: 'a', value: '1' },
          { key: 'b', value: '2' },
        ]);
        const one = await collect(uniqueName('group'), topic);
        const two = await collect(uniqueName('group'), topic);
        await waitFor(() => one.received.length === 2 && two.received.length === 2, { timeoutMs: options.timeoutMs, what: 'both groups' });
      },
      options.timeoutMs * 2,
    );

    it(
      'delivers a batch again when its handler fails',
      async () => {
        const topic = uniqueName('contract');
        await log.publish(topic, [{ key: 'a', value: 'x' }]);
        let attempts = 0;
        const delivered: string[] = [];
        const subscription = await log.subscribe({
          groupId: uniqueName('group'),
          topics: [topic],
          fromBeginning: true,
          eachBatch: async (batch) => {
            attempts++;
            if (attempts === 1) throw new Error('transient failure');
            delivered.push(...batch.records.map((r) => r.value!.toString()));
          },
        });
        subscriptions.push(subscription);
        await waitFor(() => delivered.length === 1, { timeoutMs: options.timeoutMs * 2, what: 'redelivery' });
        expect(delivered).toEqual(['x']);
        expect(attempts).toBeGreaterThanOrEqual(2);
      },
      options.timeoutMs * 3,
    );

    it(
      'consumes a rewound partition again from its committed offset (from its start while none is committed)',
      async () => {
        const topic = uniqueName('contract');
        // One key: every record on one partition.
        await log.publish(
          topic,
          Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: String(i) })),
        );
        let subscription: Subscription | null = null;
        const delivered: string[] = [];
        const committed: (string | null)[] = [];
        let rewinds = 0;
        subscription = await log.subscribe({
          groupId: uniqueName('group'),
          topics: [topic],
          fromBeginning: true,
          autoCommit: false,
          eachBatch: async ({ partition, records }) => {
            delivered.push(...records.map((r) => r.offset));
            committed.push((await subscription!.committed(topic, partition)).offset);
            if (records.at(-1)!.offset !== '9' || rewinds === 2) return;
            // At the partition's end: rewound while nothing is committed, then once more after a commit at 4.
            if (rewinds++ === 1) await subscription!.commit([{ topic, partition, offset: '4' }]);
            await subscription!.rewind(topic, partition);
            throw new Error('rewound');
          },
        });
        subscriptions.push(subscription);
        const range = (from: number) => Array.from({ length: 10 - from }, (_, i) => String(from + i));
        await waitFor(() => delivered.length >= 26, { timeoutMs: options.timeoutMs, what: 'three passes' });
        expect(delivered).toEqual([...range(0), ...range(0), ...range(4)]);
        expect(committed.at(-1)).toBe('4');
      },
      options.timeoutMs * 2,
    );

    it(
      'delivers the rest of a batch handled in part again from its first record not handled, as no failure, and commits the part handled',
      async () => {
        const topic = uniqueName('contract');
        const group = uniqueName('group');
        // One key: every record on one partition.
        await log.publish(
          topic,
          Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: String(i) })),
        );
        const starts: string[] = [];
        let errors = 0;
        const subscribe = (handle: (records: LogRecord[]) => { handled: number } | undefined) =>
          log.subscribe({
            groupId: group,
            topics: [topic],
            fromBeginning: true,
            onError: () => errors++,
            eachBatch: async ({ records }) => {
              starts.push(records[0]!.offset);
              return handle(records);
            },
          });
        // The first three taken, then none: the member stops with the rest not handled.
        const first = await subscribe(() => (starts.length === 1 ? { handled: 3 } : { handled: 0 }));
        await waitFor(() => starts.length >= 2, { timeoutMs: options.timeoutMs, what: 'the rest delivered again' });
        await first.stop();
        expect(starts.slice(0, 2)).toEqual(['0', '3']);
        // The group goes on after the three: none of the next twelve batches is taken (as many failures in a row would
        // wait 36 s), then three records of each.
        starts.length = 0;
        const delivered: string[] = [];
        const second = await subscribe((records) => {
          if (starts.length <= 12) return { handled: 0 };
          const taken = records.slice(0, 3);
          delivered.push(...taken.map((r) => r.offset));
          return taken.length < records.length ? { handled: taken.length } : undefined;
        });
        subscriptions.push(second);
        await waitFor(() => delivered.length === 7, { timeoutMs: options.timeoutMs, what: 'the records after the three' });
        expect(delivered).toEqual(['3', '4', '5', '6', '7', '8', '9']);
        expect(starts).toEqual([...Array.from({ length: 13 }, () => '3'), '6', '9']);
        expect(errors).toBe(0);
      },
      options.timeoutMs * 3,
    );

    /** Records each topic holds, per `topic:partition` (from the log's own end offsets). */
    const heldRecords = async (topics: string[]) => {
      const held = new Map<string, number>();
      for (const topic of topics)
        for (const p of await log.endOffsets(topic))
          if (p.end !== p.start) held.set(`${topic}:${p.partition}`, Number(BigInt(p.end) - BigInt(p.start)));
      return held;
    };

    it(
      'serves every partition with records waiting before serving one of them again (a deep backlog holds back none)',
      async () => {
        const topic = uniqueName('contract');
        await log.publish(
          topic,
          Array.from({ length: 4_000 }, (_, i) => ({ key: `k${i % 40}`, value: String(i) })),
        );
        const held = await heldRecords([topic]);
        const served: string[] = [];
        const received: LogRecord[] = [];
        const subscription = await log.subscribe({
          groupId: uniqueName('group'),
          topics: [topic],
          fromBeginning: true,
          eachBatch: async (batch) => {
            served.push(`${batch.topic}:${batch.partition}`);
            received.push(...batch.records);
          },
        });
        subscriptions.push(subscription);
        await waitFor(() => received.length >= 4_000, { timeoutMs: options.timeoutMs, what: '4,000 records' });
        // The first batches are one of each partition holding records, whatever their depth.
        expect(served.slice(0, held.size).sort()).toEqual([...held.keys()].sort());
      },
      options.timeoutMs * 2,
    );

    it(
      'goes on with the other partitions and topics while one partition keeps failing, and reassigns none',
      async () => {
        const topics = [uniqueName('contract'), uniqueName('contract')];
        await log.ensureTopics(topics.map((name) => ({ name, partitions: 4 })));
        const publish = (from: number) =>
          Promise.all(
            topics.map((topic) =>
              log.publish(
                topic,
                Array.from({ length: 40 }, (_, i) => ({ key: `k${i % 20}`, value: String(from + i) })),
              ),
            ),
          );
        await publish(0);
        let failing: string | null = null;
        let healed = false;
        let failures = 0;
        let rebalances = 0;
        const delivered = new Map<string, string[]>();
        const count = (id: string) => delivered.get(id)?.length ?? 0;
        const subscription = await log.subscribe({
          groupId: uniqueName('group'),
          topics,
          fromBeginning: true,
          onRebalance: () => rebalances++,
          eachBatch: async (batch) => {
            const id = `${batch.topic}:${batch.partition}`;
            // The first partition served fails until it is healed.
            failing ??= id;
            if (id === failing && !healed) {
              failures++;
              throw new Error('poison batch');
            }
            delivered.set(id, [...(delivered.get(id) ?? []), ...batch.records.map((r) => r.offset)]);
          },
        });
        subscriptions.push(subscription);
        await waitFor(() => failing, { timeoutMs: options.timeoutMs, what: 'the first batch' });
        // More records while it fails: the others take them too.
        await publish(40);
        const held = await heldRecords(topics);
        const others = [...held].filter(([id]) => id !== failing);
        expect(others.length).toBeGreaterThan(1);
        // Six failures in a row: as many as kafkajs retries a fetch before it restarts the consumer.
        await waitFor(() => failures >= 6 && others.every(([id, records]) => count(id) === records), {
          timeoutMs: options.timeoutMs,
          what: 'the other partitions, while the failing one fails six times',
        });
        expect(count(failing!)).toBe(0);
        // The failed batch is delivered again once its handler succeeds; every partition in order, once.
        healed = true;
        await waitFor(() => count(failing!) === held.get(failing!), { timeoutMs: options.timeoutMs, what: 'the healed partition' });
        for (const [id, records] of held) expect(delivered.get(id), id).toEqual(Array.from({ length: records }, (_, i) => String(i)));
        // The partitions were assigned once, when the consumer joined: a failing batch reassigns none.
        expect(rebalances).toBe(1);
      },
      options.timeoutMs * 3,
    );

    it(
      'tells where each partition of a topic ends',
      async () => {
        const topic = uniqueName('contract');
        await log.ensureTopics([{ name: topic, partitions: 2 }]);
        await log.publish(topic, [{ key: null, value: 'warm-up' }]);
        const before = await log.endOffsets(topic);
        await log.publish(
          topic,
          Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
        );
        const after = await log.endOffsets(topic);
        expect(after.map((p) => p.partition)).toEqual([0, 1]);
        const held = (offsets: typeof after) => offsets.reduce((sum, p) => sum + Number(BigInt(p.end) - BigInt(p.start)), 0);
        expect(held(before)).toBe(1);
        expect(held(after)).toBe(6);
        // Reading each partition from its start to its end gives exactly the records published.
        const { received } = await collect(uniqueName('group'), topic);
        await waitFor(() => received.length >= 6, { timeoutMs: options.timeoutMs, what: '6 records' });
        for (const p of after) {
          const offsets = received.filter((r) => r.partition === p.partition).map((r) => BigInt(r.offset));
          if (offsets.length > 0) expect(offsets[offsets.length - 1]! + 1n).toBe(BigInt(p.end));
        }
      },
      options.timeoutMs * 2,
    );

    it(
      'calls eachBatch only once subscribe has answered (a handler may use its subscription)',
      async () => {
        const topic = uniqueName('contract');
        await log.publish(topic, [{ key: 'a', value: 'already there' }]);
        let subscription: Subscription | null = null;
        const seen: (Subscription | null)[] = [];
        subscription = await log.subscribe({
          groupId: uniqueName('group'),
          topics: [topic],
          fromBeginning: true,
          eachBatch: async () => {
            seen.push(subscription);
          },
        });
        subscriptions.push(subscription);
        await waitFor(() => seen.length > 0, { timeoutMs: options.timeoutMs, what: 'the first batch' });
        expect(seen[0]).toBe(subscription);
      },
      options.timeoutMs * 2,
    );

    it(
      "reads a group's committed offsets of a topic anew at each call",
      async () => {
        const topic = uniqueName('contract');
        const group = uniqueName('group');
        await log.ensureTopics([{ name: topic, partitions: 2 }]);
        await log.publish(topic, [{ key: null, value: 'v' }]);
        expect(await log.committedOffsets(group, topic)).toEqual([
          { partition: 0, offset: null, metadata: null },
          { partition: 1, offset: null, metadata: null },
        ]);
        const { received, subscription } = await collect(group, topic);
        await waitFor(() => received.length === 1, { timeoutMs: options.timeoutMs, what: 'the record' });
        const { partition } = received[0]!;
        const other = { partition: 1 - partition, offset: null, metadata: null };
        const committed = async () => (await log.committedOffsets(group, topic)).filter((p) => p.partition === partition);
        await waitFor(async () => (await committed())[0]!.offset === '1', {
          timeoutMs: options.timeoutMs,
          what: 'the commit after the record',
        });
        // Read anew after the subscription's own read, as another member's commit would be.
        await subscription.committed(topic, partition);
        await subscription.commit([{ topic, partition, offset: '7', metadata: 'm' }]);
        expect(await log.committedOffsets(group, topic)).toEqual(
          [{ partition, offset: '7', metadata: 'm' }, other].sort((a, b) => a.partition - b.partition),
        );
        // Another group's are its own.
        expect((await log.committedOffsets(uniqueName('group'), topic)).map((p) => p.offset)).toEqual([null, null]);
      },
      options.timeoutMs * 2,
    );

    it('creates topics with the partitions asked and answers ping', async () => {
      const topic = uniqueName('contract');
      await log.ensureTopics([{ name: topic, partitions: 2 }]);
      expect((await log.endOffsets(topic)).length).toBe(2);
      await log.publish(topic, [{ key: null, value: 'v' }]);
      await expect(log.ping()).resolves.toBeUndefined();
    });
  });
}
