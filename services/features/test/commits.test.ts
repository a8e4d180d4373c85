/**
 * What a flush commits: the offsets after its writes, again until a commit is accepted (a
 * refused one is not counted), and no further than a batch whose dead letters are withheld.
 */
import { describe, expect, it } from 'vitest';
import { deadLetter, fraud, MemoryOnlineStore, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor, encodeCheckpoint } from '../src/feature-processor.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const record = (offset: number, value: string): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: 'u1',
  value: Buffer.from(value),
  timestamp: NOW,
  headers: {},
});
const event = (offset: number) => record(offset, transactionJson(`e${offset}`, NOW - 60_000 + offset));
const batch = (...records: LogRecord[]) => ({ topic: source.topic, partition: 0, records });

const processorOn = (store = new MemoryOnlineStore(() => NOW)) => {
  const processor = createFeatureProcessor({
    store,
    groups: [user],
    source,
    allowedLatenessMs: 300_000,
    clock: () => NOW,
    confirmsCommits: true,
  });
  processor.open(source.topic, 0, -Infinity);
  return processor;
};
const commitOf = (offset: number, watermark: number) => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  metadata: encodeCheckpoint(watermark),
});

describe('flush commits', () => {
  it('commit an idle partition again after a refused commit, and only until one is accepted', async () => {
    const processor = processorOn();
    await processor.process(batch(event(0), event(1)));
    const first = await processor.flush();
    expect(first.commits).toEqual([commitOf(2, NOW - 60_000 + 1)]);
    // The commit was refused (a rebalance): the partition gets no more records, but the next flush commits it again.
    expect((await processor.flush()).commits).toEqual(first.commits);
    processor.committed(first.commits);
    expect((await processor.flush()).commits).toEqual([]);
  });

  it('go no further than a batch whose dead letters are not published, with the watermark before it', async () => {
    const processor = processorOn();
    await processor.process(batch(event(0)));
    const loaded = await processor.load(batch(event(1), record(2, '{not json'), event(3)));
    const before = processor.checkpoint(loaded);
    const outcome = processor.apply(loaded);
    expect(outcome.applied).toBe(2);
    const letters = outcome.rejected.map((r) => deadLetter(r.record, r.reason, r.detail, 'features'));
    processor.withhold(loaded, before, letters);

    // The states are written with the whole batch; the commit stops before it: a replay from there makes the dead letter again.
    const held = await processor.flush();
    expect(held.written).toBe(1);
    expect(held.commits).toEqual([commitOf(1, NOW - 60_000)]);
    processor.committed(held.commits);

    const [withheld] = processor.withheld();
    expect(withheld).toMatchObject({ topic: source.topic, partition: 0, letters });
    processor.published(withheld!);
    expect(processor.withheld()).toEqual([]);
    expect((await processor.flush()).commits).toEqual([commitOf(4, NOW - 60_000 + 3)]);
  });
});
