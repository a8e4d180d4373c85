/**
 * The pipeline's flushes: at most one in flight, and no reading into memory while the changes
 * already read cannot be written.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createLogger,
  createRegistry,
  fraud,
  MemoryEventLog,
  MemoryOnlineStore,
  readFeatureValues,
  type StateWrite,
} from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { startFeaturePipeline, type FeaturePipeline } from '../src/pipeline.js';
import { transactionJson } from './transaction.js';

const example = fraud.fraudExample();
const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const transaction = (id: string) => transactionJson(id, Date.now() - 1_000);

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
  vi.useRealTimers();
});

async function start(store: MemoryOnlineStore, eventLog = new MemoryEventLog(), flushIntervalMs = 5) {
  const registry = createRegistry({ defaultMetrics: false });
  const logs: string[] = [];
  const logger = createLogger('test', 'warn', { write: (line: string) => logs.push((JSON.parse(line) as { msg: string }).msg) });
  const pipeline: FeaturePipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: example.sources.filter((s) => s.topic === 'transactions'),
    groups: [user],
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry,
    logger,
    flushIntervalMs,
  });
  stops.push(() => pipeline.stop());
  const applied = async () => {
    const metric = registry.getSingleMetric('tributary_pipeline_events_total');
    return metric ? (await metric.get()).values.filter((v) => v.labels.outcome === 'applied').reduce((sum, v) => sum + v.value, 0) : 0;
  };
  return { eventLog, pipeline, logs, applied };
}

describe('feature flushes', () => {
  it('read no more batches while their changes cannot be written, and go on once the store takes writes again', async () => {
    const store = new MemoryOnlineStore();
    let writesFail = true;
    let refused = 0;
    const write = store.write.bind(store);
    store.write = async (writes: StateWrite[]) => {
      if (!writesFail) return write(writes);
      refused++;
      throw new Error('store down');
    };
    const { eventLog, logs, applied } = await start(store);
    await eventLog.publish('transactions', [{ key: 'u1', value: transaction('e1') }]);
    await waitFor(async () => (await applied()) === 1 && refused > 0, { what: 'e1 applied, its write refused' });
    await eventLog.publish('transactions', [{ key: 'u1', value: transaction('e2') }]);
    // The next batch fails (it is delivered again) rather than being read into memory.
    await waitFor(async () => logs.includes('feature batch failed; it will be retried') || (await applied()) > 1, {
      what: 'the batch of e2 handled',
    });
    expect(await applied()).toBe(1);
    writesFail = false;
    await waitFor(async () => (await applied()) === 2, { what: 'e2 applied once the store is back' });
    const count = await waitFor(async () => {
      const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
      return readFeatureValues(user, fields ?? null, Date.now()).values.count_24h === 2;
    });
    expect(count).toBe(true);
  });

  it('go on reading while commits fail but writes succeed (commits fail while the group rebalances)', async () => {
    const eventLog = new MemoryEventLog();
    const subscribe = eventLog.subscribe.bind(eventLog);
    let refusedCommits = 0;
    eventLog.subscribe = async (options) => {
      const subscription = await subscribe(options);
      return {
        ...subscription,
        // Refused after a while, so that batches of other partitions are applied meanwhile.
        commit: async () => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          refusedCommits++;
          throw new Error('The group is rebalancing, so a rejoin is needed');
        },
      };
    };
    // Flushes every 50 ms, commits refused 20 ms later, an event every ~5 ms: batches are applied while a flush fails.
    const { logs, applied } = await start(new MemoryOnlineStore(), eventLog, 50);
    const events = 60;
    for (let i = 0; i < events; i++) {
      await eventLog.publish('transactions', [{ key: `u${i % 4}`, value: transaction(`e${i}`) }]);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(async () => (await applied()) === events, { what: 'every event applied' });
    expect(refusedCommits).toBeGreaterThan(1);
    expect(logs).not.toContain('feature batch failed; it will be retried');
  });

  it('start no second flush while one is in flight, though the interval elapsed while a batch held the pipeline', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const store = new MemoryOnlineStore();
    let writes = 0;
    let releaseWrites!: () => void;
    const writesReleased = new Promise<void>((resolve) => (releaseWrites = resolve));
    const write = store.write.bind(store);
    store.write = async (batch: StateWrite[]) => {
      writes++;
      await writesReleased;
      return write(batch);
    };
    // The batch's dead letter waits: the batch holds the pipeline meanwhile.
    const eventLog = new MemoryEventLog();
    let deadLetterPending = false;
    let releaseDeadLetter!: () => void;
    const deadLetterReleased = new Promise<void>((resolve) => (releaseDeadLetter = resolve));
    const publish = eventLog.publish.bind(eventLog);
    eventLog.publish = async (topic, records) => {
      if (topic === 'dead-letter') {
        deadLetterPending = true;
        await deadLetterReleased;
      }
      return publish(topic, records);
    };
    const { pipeline } = await start(store, eventLog, 50);
    await eventLog.publish('transactions', [{ key: 'u1', value: 'not json' }]);
    await waitFor(() => deadLetterPending, { what: 'the dead letter on its way' });
    // The interval elapses: the timer finds no flush in flight and waits for the batch to finish.
    vi.advanceTimersByTime(50);
    releaseDeadLetter();
    // The batch ends with a flush, whose write is in flight.
    await waitFor(() => writes === 1, { what: "the batch's flush writing" });
    releaseWrites();
    // One more flush, after every flush started before it.
    await pipeline.flush();
    expect(writes).toBe(2);
  });
});
