/**
 * The pipeline's dead letters: none is lost when the dead-letter topic refuses them for a
 * while (their offsets are not committed before they are out), and those of a batch of large
 * bad records go out within the broker's limit on a batch.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, MemoryOnlineStore, readFeatureValues, recordBytes, type DeadLetter, type OutgoingRecord } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { source, startMember, user } from './member.js';
import { transactionJson } from './transaction.js';

const GROUP = 'features';
/** The broker's default `message.max.bytes`: the largest record batch it takes. */
const BROKER_BATCH_BYTES = 1_048_588;

/** An event log whose dead-letter topic refuses sends while it is down, and any send beyond the broker's limit. */
class DeadLetterTopic extends MemoryEventLog {
  down = false;
  refused = 0;
  largestSend = 0;
  override async publish(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (topic === 'dead-letter') {
      const bytes = records.reduce((sum, record) => sum + recordBytes(record), 0);
      if (this.down || bytes > BROKER_BATCH_BYTES) {
        this.refused++;
        throw new Error(this.down ? 'dead-letter topic unavailable' : 'MESSAGE_TOO_LARGE');
      }
      this.largestSend = Math.max(this.largestSend, bytes);
    }
    return super.publish(topic, records);
  }
}

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
});

const start = (eventLog: MemoryEventLog, store: MemoryOnlineStore) => startMember(eventLog, store, stops);

/** The group's committed offset of the partition, read by a member that joins it (the pipeline is stopped). */
async function committedOffset(eventLog: MemoryEventLog, partition: number): Promise<string | null> {
  const probe = await eventLog.subscribe({
    groupId: `${GROUP}-${source.name}`,
    topics: [source.topic],
    fromBeginning: true,
    autoCommit: false,
    eachBatch: async () => {},
  });
  const { offset } = await probe.committed(source.topic, partition);
  await probe.stop();
  return offset;
}

const count24h = async (store: MemoryOnlineStore) => {
  const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
  return readFeatureValues(user, fields ?? null, Date.now()).values.count_24h;
};

describe('dead letters', () => {
  it('that cannot be published keep their offsets uncommitted: a restart publishes them, and applies nothing twice', async () => {
    const eventLog = new DeadLetterTopic();
    eventLog.down = true;
    const store = new MemoryOnlineStore();
    const now = Date.now();
    await eventLog.publish('transactions', [
      { key: 'u1', value: transactionJson('e1', now) },
      { key: 'u1', value: '{not json' },
      { key: 'u1', value: transactionJson('e2', now) },
    ]);
    const first = await start(eventLog, store);
    await waitFor(async () => eventLog.refused > 1 && (await count24h(store)) === 2, {
      what: 'the events written, their dead letter refused again',
    });
    await first.pipeline.flush();
    await first.stop();
    const partition = eventLog.records('transactions')[0]!.partition;
    // Nothing committed: the dead letter is the second record of the first batch.
    expect(await committedOffset(eventLog, partition)).toBeNull();

    eventLog.down = false;
    await start(eventLog, store);
    await waitFor(() => eventLog.records('dead-letter').length > 0, { what: 'the dead letter published after the restart' });
    expect(eventLog.records('dead-letter').map((letter) => letter.key)).toEqual([`transactions:${partition}:1`]);
    expect(await count24h(store)).toBe(2);
  });

  it('that could not be published go out once the topic takes them, without a restart, and the commit then moves on', async () => {
    const eventLog = new DeadLetterTopic();
    eventLog.down = true;
    const store = new MemoryOnlineStore();
    await eventLog.publish('transactions', [
      { key: 'u1', value: '{not json' },
      { key: 'u1', value: transactionJson('e1', Date.now()) },
    ]);
    const { pipeline, stop } = await start(eventLog, store);
    await waitFor(() => eventLog.refused > 0, { what: 'the dead letter refused' });
    eventLog.down = false;
    await waitFor(() => eventLog.records('dead-letter').length === 1, { what: 'the dead letter published' });
    await pipeline.flush();
    await stop();
    expect(await committedOffset(eventLog, eventLog.records('transactions')[0]!.partition)).toBe('2');
    expect(await count24h(store)).toBe(1);
  });

  it('of a batch of large bad records go out in sends within the broker limit, a record too large for it cut to fit', async () => {
    const eventLog = new DeadLetterTopic();
    await eventLog.ensureTopics([{ name: 'dead-letter', partitions: 1 }]);
    // A fetch of ~1 MB: 400 invalid transactions of 2.5 KB, then a record of 1 MB that is not UTF-8.
    const invalid = transactionJson('e', Date.now(), { amount: 'oops', note: 'x'.repeat(2_300) });
    const huge = Buffer.alloc(1_000_000, 0xff);
    await eventLog.publish('transactions', [
      ...Array.from({ length: 400 }, () => ({ key: 'u1', value: invalid })),
      { key: 'u1', value: huge },
    ]);
    await start(eventLog, new MemoryOnlineStore());
    await waitFor(() => eventLog.records('dead-letter').length === 401, { what: 'every dead letter published' });
    expect(eventLog.largestSend).toBeLessThanOrEqual(BROKER_BATCH_BYTES);
    const cut = JSON.parse(eventLog.records('dead-letter').at(-1)!.value!.toString()) as DeadLetter;
    expect(cut).toMatchObject({ reason: 'malformed', encoding: 'base64', truncated: { original_bytes: 1_000_000 } });
    expect(cut.source.offset).toBe('400');
    expect(cut.detail).toMatch(/cut to its beginning.*offset 400 of transactions partition/);
    const kept = Buffer.from(cut.value!, 'base64');
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.equals(huge.subarray(0, kept.length))).toBe(true);
  });
});
