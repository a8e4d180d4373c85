/**
 * Reading a topic to its end: when its last offsets hold no record to deliver (a topic written
 * in transactions ends with a commit marker, which the consumer skips), and as a stream that
 * holds one batch at a time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  openTopic,
  readTopicToEnd,
  type EventLog,
  type LogRecord,
  type PartitionOffsets,
  type RecordBatch,
  type SubscribeOptions,
} from '../../src/index.js';

const record = (offset: number, partition = 0): LogRecord => ({
  topic: 't',
  partition,
  offset: String(offset),
  key: null,
  value: Buffer.from(String(offset)),
  timestamp: 0,
  headers: {},
});

/** A log that delivers `batches` one after the other, each once the handler of the one before has returned. */
function scriptedLog(ends: PartitionOffsets[], batches: RecordBatch[], onBatch: () => void = () => {}): EventLog {
  return {
    endOffsets: async () => ends,
    committedOffsets: async () => ends.map(({ partition }) => ({ partition, offset: null, metadata: null })),
    subscribe: async (options: SubscribeOptions) => {
      setImmediate(async () => {
        for (const batch of batches) {
          if (batch.records.length === 0 && !options.emptyBatches) continue;
          onBatch();
          await options.eachBatch(batch);
        }
      });
      return {
        commit: async () => {},
        committed: async () => ({ offset: null, metadata: null }),
        rewind: async () => {},
        stop: async () => {},
      };
    },
    publish: async () => {},
    ensureTopics: async () => [],
    ping: async () => {},
    close: async () => {},
  };
}

/** A log whose partition holds records at 0-1 and 3, a marker at 2 (after 0-1) and one at 4 (the end is 5). */
const transactionalLog = (batches: RecordBatch[]) => scriptedLog([{ partition: 0, start: '0', end: '5' }], batches);

describe('readTopicToEnd', () => {
  it('finishes when the last batch reaches the end with a marker after its last record', async () => {
    const log = transactionalLog([
      { topic: 't', partition: 0, records: [record(0), record(1)], lastOffset: '2' },
      { topic: 't', partition: 0, records: [record(3)], lastOffset: '4' },
    ]);
    const [partition] = await readTopicToEnd(log, 't', { timeoutMs: 2_000 });
    expect(partition!.map((r) => r.offset)).toEqual(['0', '1', '3']);
  });

  it('finishes when the end is reached by a fetch of markers alone', async () => {
    const log = transactionalLog([
      { topic: 't', partition: 0, records: [record(0), record(1)], lastOffset: '2' },
      { topic: 't', partition: 0, records: [record(3)], lastOffset: '3' },
      { topic: 't', partition: 0, records: [], lastOffset: '4' },
    ]);
    const [partition] = await readTopicToEnd(log, 't', { timeoutMs: 2_000 });
    expect(partition!.map((r) => r.offset)).toEqual(['0', '1', '3']);
  });
});

describe('openTopic', () => {
  it('hands a batch on once the one before it was consumed, each partition in offset order, a batch delivered again not repeated', async () => {
    let handed = 0;
    const log = scriptedLog(
      [
        { partition: 0, start: '0', end: '3' },
        { partition: 1, start: '0', end: '2' },
      ],
      [
        { topic: 't', partition: 0, records: [record(0), record(1)] },
        { topic: 't', partition: 1, records: [record(0, 1)] },
        // Partition 0 again from offset 1, as after a rebalance, and a record past the end when the read was opened.
        { topic: 't', partition: 0, records: [record(1), record(2), record(3)] },
        { topic: 't', partition: 1, records: [record(1, 1)] },
      ],
      () => handed++,
    );
    const records = await openTopic(log, 't', { timeoutMs: 2_000 });
    const read: string[] = [];
    for await (const r of records) {
      read.push(`${r.partition}@${r.offset}`);
      // The batch being consumed is the last handed on: none is fetched ahead of it.
      const batch: Record<string, number> = { '0@0': 1, '0@1': 1, '1@0': 2, '0@2': 3, '1@1': 4 };
      expect(handed).toBe(batch[`${r.partition}@${r.offset}`]);
    }
    expect(read).toEqual(['0@0', '0@1', '1@0', '0@2', '1@1']);
    await expect(async () => {
      for await (const r of records) void r;
    }).rejects.toThrow('topic t is read once');
  });

  it('gives up, naming the partitions still short, when no record comes before the end', async () => {
    const log = scriptedLog([{ partition: 0, start: '0', end: '5' }], [{ topic: 't', partition: 0, records: [record(0)] }]);
    const read: string[] = [];
    await expect(async () => {
      for await (const r of await openTopic(log, 't', { timeoutMs: 200 })) read.push(r.offset);
    }).rejects.toThrow('topic t: no record came within 200 ms before its end (partitions still short: 0)');
    expect(read).toEqual(['0']);
  });

  it('joins at the open, before the first record is asked for: topics opened one after the other are joined at once', async () => {
    const subscribed: string[] = [];
    const log = (name: string): EventLog => {
      const scripted = scriptedLog([{ partition: 0, start: '0', end: '1' }], [{ topic: name, partition: 0, records: [record(0)] }]);
      return { ...scripted, subscribe: (options) => (subscribed.push(name), scripted.subscribe(options)) };
    };
    const first = await openTopic(log('a'), 'a', { timeoutMs: 2_000 });
    const second = await openTopic(log('b'), 'b', { timeoutMs: 2_000 });
    expect(subscribed).toEqual(['a', 'b']);
    for (const records of [first, second]) {
      const read: string[] = [];
      for await (const r of records) read.push(r.offset);
      expect(read).toEqual(['0']);
    }
  });

  it('heartbeats while a batch waits for the reader, and stops once it is consumed', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let heartbeats = 0;
    let delivered = false;
    const log = scriptedLog(
      [{ partition: 0, start: '0', end: '2' }],
      [{ topic: 't', partition: 0, records: [record(0), record(1)], heartbeat: async () => void heartbeats++ }],
      () => (delivered = true),
    );
    const records = await openTopic(log, 't', { timeoutMs: 2_000 });
    await vi.waitFor(() => expect(delivered).toBe(true), { interval: 5 });
    await vi.advanceTimersByTimeAsync(3_500);
    expect(heartbeats).toBe(3);
    const read: string[] = [];
    for await (const r of records) read.push(r.offset);
    expect(read).toEqual(['0', '1']);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(heartbeats).toBe(3);
  });
});

afterEach(() => {
  vi.useRealTimers();
});
