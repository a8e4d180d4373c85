import { MemoryEventLog, type EventLog, type OutgoingRecord } from '@tributary/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { topicBatches } from '../src/topic-batches.js';

/** An event log that records each publish's records. */
function recordingLog() {
  const log = new MemoryEventLog();
  const publishes: string[][] = [];
  const publish = log.publish.bind(log);
  log.publish = async (topic: string, records: OutgoingRecord[]) => {
    publishes.push(records.map((r) => String(r.value)));
    await publish(topic, records);
  };
  return { log, publishes };
}

const record = (value: string): OutgoingRecord => ({ key: value, value });

afterEach(() => {
  vi.useRealTimers();
});

describe('topicBatches', () => {
  it('without a linger, sends the records added within one event-loop turn together', async () => {
    const { log, publishes } = recordingLog();
    const send = topicBatches(log, 't');
    await Promise.all([send(record('a')), send(record('b'))]);
    await send(record('c'));
    expect(publishes).toEqual([['a', 'b'], ['c']]);
  });

  it('with a linger, sends the records added within it after the first together, and settles each with its batch', async () => {
    vi.useFakeTimers();
    const { log, publishes } = recordingLog();
    const send = topicBatches(log, 't', 50);
    const settled: string[] = [];
    const first = send(record('a')).then(() => settled.push('a'));
    await vi.advanceTimersByTimeAsync(30);
    const second = send(record('b')).then(() => settled.push('b'));
    expect(publishes).toEqual([]);
    await vi.advanceTimersByTimeAsync(20);
    await Promise.all([first, second]);
    expect(publishes).toEqual([['a', 'b']]);
    expect(settled).toEqual(['a', 'b']);
    // The next record waits a linger of its own.
    const third = send(record('c'));
    await vi.advanceTimersByTimeAsync(49);
    expect(publishes).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await third;
    expect(publishes).toEqual([['a', 'b'], ['c']]);
    expect(
      log
        .records('t')
        .map((r) => String(r.value))
        .sort(),
    ).toEqual(['a', 'b', 'c']);
  });

  it('says when every record added so far has left: after the linger and the publish', async () => {
    vi.useFakeTimers();
    const { log, publishes } = recordingLog();
    const send = topicBatches(log, 't', 50);
    await send.flushed();
    void send(record('a'));
    let flushed = false;
    const flushing = send.flushed().then(() => (flushed = true));
    await vi.advanceTimersByTimeAsync(49);
    expect(flushed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await flushing;
    expect(publishes).toEqual([['a']]);
  });

  it('once abandoned, fails the records waiting, those of the publish under way, and those added later', async () => {
    const published: string[][] = [];
    const log = {
      publish: (_topic: string, records: OutgoingRecord[]) => {
        published.push(records.map((r) => String(r.value)));
        return new Promise<void>(() => {});
      },
    } as unknown as EventLog;
    const send = topicBatches(log, 't');
    const outcome = (value: string) =>
      send(record(value)).then(
        () => 'published',
        (error: Error) => error.message,
      );
    const first = outcome('a');
    await new Promise(setImmediate);
    const second = outcome('b');
    expect(published).toEqual([['a']]);
    expect(send.abandon(new Error('stopped'))).toBe(2);
    expect(await Promise.all([first, second, outcome('c')])).toEqual(['stopped', 'stopped', 'stopped']);
    await send.flushed();
    expect(published).toEqual([['a']]);
  });
});
