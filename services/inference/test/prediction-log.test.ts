/** The prediction log's batching: a batch leaves when full or a linger after its first record. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, type OutgoingRecord, type PredictionLogRecord } from '@tributary/shared';
import { PredictionLog } from '../src/prediction-log.js';

const record = (i: number) => ({ request_id: `r${i}` }) as PredictionLogRecord;

function logWith(options: { maxBatch?: number; lingerMs?: number } = {}) {
  const batches: string[][] = [];
  let release: (() => void) | null = null;
  let hold = false;
  const log = new PredictionLog({
    eventLog: {
      publish: async (_topic: string, records: OutgoingRecord[]) => {
        batches.push(records.map((r) => r.key!));
        if (hold) await new Promise<void>((resolve) => (release = resolve));
      },
    },
    topic: 'predictions',
    capacity: 1_000,
    stats: { published: () => {}, dropped: () => {}, buffered: () => {} },
    logger: createLogger('test', 'silent'),
    ...options,
  });
  return { log, batches, holdSends: (on: boolean) => (hold = on), release: () => release?.() };
}

describe('prediction log batching', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits the linger after the first record, then sends what came meanwhile as one batch', async () => {
    const { log, batches } = logWith({ lingerMs: 50 });
    log.append(record(1));
    await vi.advanceTimersByTimeAsync(30);
    log.append(record(2));
    log.append(record(3));
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    expect(batches).toEqual([['r1', 'r2', 'r3']]);
    expect(log.pending).toBe(0);
  });

  it('sends a full batch at once, and what arrives during a send after the linger unless a batch is full again', async () => {
    const { log, batches, holdSends, release } = logWith({ lingerMs: 50, maxBatch: 3 });
    holdSends(true);
    for (let i = 1; i <= 3; i++) log.append(record(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toEqual([['r1', 'r2', 'r3']]);
    holdSends(false);
    log.append(record(4));
    release();
    await vi.advanceTimersByTimeAsync(0);
    // r4 waits for the linger: one record does not make a batch.
    expect(batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(batches).toEqual([['r1', 'r2', 'r3'], ['r4']]);
  });

  it('flush sends everything queued, in batches', async () => {
    const { log, batches } = logWith({ lingerMs: 1_000, maxBatch: 2 });
    for (let i = 1; i <= 5; i++) log.append(record(i));
    await log.flush();
    expect(batches).toEqual([['r1', 'r2'], ['r3', 'r4'], ['r5']]);
    expect(log.pending).toBe(0);
  });
});
