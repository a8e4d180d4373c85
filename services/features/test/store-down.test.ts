/**
 * A store that is down while a partition's first batch is loaded: the batch fails (and is
 * delivered again), and nothing else fails behind it. The partition's event-id log is read
 * beside the batch's entities; when both reads fail, the log's failure must not be left
 * unhandled (Node ends a process on an unhandled rejection: the pipeline would exit while
 * Redis is down instead of retrying).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, type EventIdChunk, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const record = (offset: number): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: 'u1',
  value: Buffer.from(
    JSON.stringify({
      event_id: `e${offset}`,
      user_id: 'u1',
      merchant_id: 'm1',
      amount: 10,
      currency: 'USD',
      country: 'US',
      channel: 'web',
      ts: NOW,
    }),
  ),
  timestamp: NOW,
  headers: {},
});

/** Fails every read; the event-id log's read fails a little later than the entities' read. */
class DownStore extends MemoryOnlineStore {
  down = true;
  override async read(...args: Parameters<MemoryOnlineStore['read']>) {
    if (this.down) throw new Error('connection refused (entities)');
    return super.read(...args);
  }
  override async readEventIds(log: string): Promise<EventIdChunk[]> {
    if (this.down) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new Error('connection refused (event ids)');
    }
    return super.readEventIds(log);
  }
}

describe('a store that is down while a partition is opened', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it('fails the batch, leaves no rejection unhandled, and applies the batch once the store is back', async () => {
    const store = new DownStore(() => NOW);
    const processor = createFeatureProcessor({ store, groups: [user], source, allowedLatenessMs: 5 * 60_000, clock: () => NOW });
    processor.open(source.topic, 0, -Infinity);
    const batch = { topic: source.topic, partition: 0, records: [record(0), record(1)] };

    await expect(processor.process(batch)).rejects.toThrow(/connection refused/);
    // Long enough for the event-id log's read to fail too, and for Node to report it if nobody handles it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(unhandled).toEqual([]);

    store.down = false;
    expect((await processor.process(batch)).applied).toBe(2);
  });
});
