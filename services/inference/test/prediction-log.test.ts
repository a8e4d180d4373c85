/** The prediction log's batching: a batch leaves when full or a linger after its first record. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, predictionRecordJson, type OutgoingRecord, type PredictionLogRecord } from '@tributary/shared';
import { WorkerPublisher } from '../src/log-publisher.js';
import { encodePrediction, eventLogPublisher, PredictionLog } from '../src/prediction-log.js';

const record = (i: number) => ({ request_id: `r${i}` }) as PredictionLogRecord;
const encoded = (i: number): OutgoingRecord => ({ key: `r${i}`, value: `{"request_id":"r${i}"}` });

function logWith(options: { maxBatch?: number; lingerMs?: number } = {}) {
  const batches: string[][] = [];
  let release: (() => void) | null = null;
  let hold = false;
  const log = new PredictionLog({
    publisher: {
      publishPredictions: async (_topic: string, records: OutgoingRecord[]) => {
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

describe('prediction log at shutdown', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits up to its close timeout (10 s) for a publish Kafka does not answer, then logs and counts the records as dropped', async () => {
    vi.useFakeTimers();
    const counted = { published: 0, dropped: 0 };
    const lines: string[] = [];
    let settle!: () => void;
    const log = new PredictionLog({
      publisher: { publishPredictions: () => new Promise<void>((resolve) => (settle = resolve)) },
      topic: 'predictions',
      capacity: 1_000,
      stats: { published: (n) => (counted.published += n), dropped: (n) => (counted.dropped += n), buffered: () => {} },
      logger: createLogger('test', 'error', { write: (line: string) => lines.push(line) }),
    });
    for (let i = 1; i <= 3; i++) log.append(record(i));
    const closing = log.close();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(counted.dropped).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    await closing;
    expect(counted).toEqual({ published: 0, dropped: 3 });
    expect(lines.map((line) => JSON.parse(line) as { msg: string; records: number })).toMatchObject([
      { msg: 'prediction log: records not delivered at shutdown', records: 3 },
    ]);
    // The batch delivered after all is not counted twice.
    settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(counted).toEqual({ published: 0, dropped: 3 });
    expect(log.pending).toBe(0);
  });
});

describe('a record appended after the prediction log closed', () => {
  it('is counted as dropped (an error logged once), never queued where nothing sends it', async () => {
    const counted = { published: 0, dropped: 0 };
    const lines: string[] = [];
    const log = new PredictionLog({
      publisher: { publishPredictions: async (_topic, records) => void (counted.published += records.length) },
      topic: 'predictions',
      capacity: 1_000,
      stats: { published: () => {}, dropped: (n) => (counted.dropped += n), buffered: () => {} },
      logger: createLogger('test', 'error', { write: (line: string) => lines.push(line) }),
    });
    log.append(record(1));
    await log.close();
    log.append(record(2));
    log.append(record(3));
    expect(counted).toEqual({ published: 1, dropped: 2 });
    expect(log.pending).toBe(0);
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual([
      'prediction log: records appended after shutdown are dropped',
    ]);
  });
});

describe('the kafkajs publisher in a worker thread', () => {
  it('stops at close without waiting for a batch kafkajs still retries', { timeout: 30_000 }, async () => {
    // Nothing listens on port 1: kafkajs retries the connection for most of a minute (logLevel 0: quiet).
    const publisher = new WorkerPublisher({ brokers: ['127.0.0.1:1'], clientId: 'test', kafka: { logLevel: 0 } });
    const sent = publisher.publishPredictions('predictions', [encoded(1)]).then(
      () => 'delivered',
      (error: Error) => error.message,
    );
    await publisher.close();
    expect(await sent).toMatch(/terminating/i);
  });
});

const full: PredictionLogRecord = {
  prediction_id: 'p1',
  request_id: 'r1',
  model: { name: 'm', version: '1' },
  variant: 'champion',
  entities: { user_id: 'u1' },
  request: { amount: 1.5 },
  features: { a: 2, b: 0.5 },
  defaulted: ['b'],
  feature_age_ms: { g: 10 },
  score: 0.25,
  degraded: false,
  requested_at: 1,
  predicted_at: 2,
  latency_ms: 1.25,
};

describe('prediction log encoding', () => {
  it('keys each record by its request id and holds it as JSON, the features and score as float32 text', () => {
    const records = [full, { ...full, request_id: 'r2', features: { a: Math.fround(0.1) }, score: Math.fround(0.3) }];
    const encoded = records.map(encodePrediction);
    expect(encoded.map((r) => r.key)).toEqual(records.map((r) => r.request_id));
    expect(JSON.parse(encoded[0]!.value.toString())).toEqual(records[0]);
    expect(encoded[1]!.value.toString()).toContain('"features":{"a":0.100000001},');
    expect(encoded[1]!.value.toString()).toContain('"score":0.300000012,');
  });

  it('encodes a record as it is appended: what changes in it later is not logged', async () => {
    const sent: OutgoingRecord[][] = [];
    const log = new PredictionLog({
      publisher: { publishPredictions: async (_topic, records) => void sent.push(records) },
      topic: 'predictions',
      capacity: 10,
      stats: { published: () => {}, dropped: () => {}, buffered: () => {} },
      logger: createLogger('test', 'silent'),
    });
    const appended = { ...full, features: { ...full.features } };
    log.append(appended);
    appended.features.a = 99;
    await log.flush();
    expect(sent).toEqual([[{ key: 'r1', value: Buffer.from(predictionRecordJson(full)) }]]);
  });

  it('publishes to an event log as given, one batch in one call', async () => {
    const calls: { topic: string; keys: (string | null | undefined)[] }[] = [];
    const publisher = eventLogPublisher({
      publish: async (topic, records) => {
        calls.push({ topic, keys: records.map((r) => r.key) });
      },
    });
    await publisher.publishPredictions('predictions', [encoded(1), encoded(2)]);
    expect(calls).toEqual([{ topic: 'predictions', keys: ['r1', 'r2'] }]);
  });
});
