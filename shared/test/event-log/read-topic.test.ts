/**
 * Reading a topic to its end when its last offsets hold no record to deliver: a topic written
 * in transactions ends with a commit marker, which the consumer skips.
 */
import { describe, expect, it } from 'vitest';
import { readTopicToEnd, type EventLog, type LogRecord, type RecordBatch, type SubscribeOptions } from '../../src/index.js';

const record = (offset: number): LogRecord => ({
  topic: 't',
  partition: 0,
  offset: String(offset),
  key: null,
  value: Buffer.from(String(offset)),
  timestamp: 0,
  headers: {},
});

/** A log whose partition holds records at 0-1 and 3, a marker at 2 (after 0-1) and one at 4 (the end is 5). */
function transactionalLog(batches: RecordBatch[]): EventLog {
  return {
    endOffsets: async () => [{ partition: 0, start: '0', end: '5' }],
    subscribe: async (options: SubscribeOptions) => {
      setImmediate(async () => {
        for (const batch of batches) {
          if (batch.records.length === 0 && !options.emptyBatches) continue;
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
