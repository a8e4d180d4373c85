import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, createRegistry, MemoryEventLog, type DeadLetter } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { startMonitor, type Monitor } from '../src/monitor.js';

let monitor: Monitor | null = null;
afterEach(async () => {
  await monitor?.stop();
  monitor = null;
});

const prediction = (id: string, score: number) => ({
  prediction_id: `p-${id}`,
  request_id: id,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  score,
  latency_ms: 1.2,
});

describe('monitor', () => {
  it('counts predictions and labels, observes scores, and dead-letters malformed records', async () => {
    const eventLog = new MemoryEventLog();
    const registry = createRegistry({ defaultMetrics: false });
    monitor = await startMonitor({
      eventLog,
      topics: { predictions: 'predictions', labels: 'labels', deadLetter: 'dead-letter' },
      groupId: 'monitor-test',
      registry,
      logger: createLogger('test', 'silent'),
    });
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.02)) },
      { key: 'b', value: JSON.stringify(prediction('b', 0.97)) },
      { key: 'c', value: '{"prediction_id": 3' },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 0, ts: Date.now() }) },
      { key: 'b', value: JSON.stringify({ request_id: 'b', label: 1, ts: '2026-11-28T12:00:00Z' }) },
      { key: 'x', value: JSON.stringify({ request_id: 'x', label: 2, ts: Date.now() }) },
    ]);
    await waitFor(async () => /stream="labels",outcome="dead_lettered"\} 1/.test(await registry.metrics()), {
      what: 'all records consumed',
    });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 2/);
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="dead_lettered"\} 1/);
    expect(text).toMatch(/tributary_monitor_records_total\{stream="labels",outcome="accepted"\} 2/);
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1/);
    expect(text).toMatch(/tributary_monitor_score_bucket\{le="0.05",model="fraud_detector",version="1",variant="champion"\} 1/);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.source.topic, l.reason])).toEqual(
      expect.arrayContaining([
        ['predictions', 'malformed'],
        ['labels', 'invalid'],
      ]),
    );
    expect(letters.find((l) => l.source.topic === 'labels')!.detail).toMatch(/label/);
  });
});
