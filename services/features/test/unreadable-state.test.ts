/**
 * A stored entity state the pipeline cannot read (a value damaged, or written by something else) does not stop its
 * partition: the entity's share starts over from its next events, and the pipeline is told (a metric and a warning).
 */
import { describe, expect, it } from 'vitest';
import { fraud, MemoryOnlineStore, readFeatureValues, type LogRecord } from '@tributary/shared';
import { createFeatureProcessor } from '../src/feature-processor.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2026, 11, 2, 12, 0, 0);
const key = (id: string) => ({ group: user.id, entity: 'user_id', id });

const record = (offset: number, userId: string): LogRecord => ({
  topic: source.topic,
  partition: 0,
  offset: String(offset),
  key: userId,
  value: Buffer.from(transactionJson(`e${offset}`, NOW - 60_000 + offset, { user_id: userId })),
  timestamp: NOW,
  headers: {},
});

describe('an unreadable stored state', () => {
  it('starts its entity over and lets the batch and the other entities of its partition go on', async () => {
    const store = new MemoryOnlineStore(() => NOW);
    // Three bytes where a state belongs: shorter than the binary layout's header.
    await store.write([
      { key: key('u_bad'), partition: 0, offset: '0', set: { s0: Buffer.from([2, 0, 0]) }, remove: [], ttlMs: 86_400_000 },
    ]);
    const told: [string, string][] = [];
    const processor = createFeatureProcessor({
      store,
      groups: [user],
      source,
      allowedLatenessMs: 300_000,
      clock: () => NOW,
      unreadableState: (entity, reason) => told.push([entity, reason]),
    });
    processor.open(source.topic, 0, -Infinity);
    await processor.process({ topic: source.topic, partition: 0, records: [record(1, 'u_ok'), record(2, 'u_bad'), record(3, 'u_ok2')] });
    await processor.flush();
    expect(told).toEqual([[`${user.id} user_id u_bad`, expect.stringMatching(/^stored partition state: /)]]);
    const stored = await store.read(['u_ok', 'u_bad', 'u_ok2'].map(key));
    expect(stored.map((fields) => readFeatureValues(user, fields, NOW).values.count_10m)).toEqual([1, 1, 1]);
  });
});
