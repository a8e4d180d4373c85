/**
 * A label the simulator does not send is counted and said: beyond `maxPendingLabels` waiting
 * for their time (`labelsDropped`), or when its publish fails (`labelPublishErrors`).
 * Simulated time (fake timers).
 */
import { describe, expect, it, vi } from 'vitest';
import { MemoryEventLog, type EventLog, type OutgoingRecord } from '@tributary/shared';
import type { SimulatorOptions } from '../src/simulator.js';
import { RATE, simulatedTime, simulatorOn } from './simulated-time.js';

const { warnings } = simulatedTime();
const run = (eventLog: EventLog, options: Partial<SimulatorOptions>) => simulatorOn(eventLog, warnings, options);

describe('the simulator labels', () => {
  it('beyond maxPendingLabels waiting for their time are counted as dropped and said', async () => {
    const eventLog = new MemoryEventLog();
    const simulator = run(eventLog, { maxPendingLabels: 5 });
    await vi.advanceTimersByTimeAsync(1000);
    const stopped = simulator.stop();
    await vi.advanceTimersByTimeAsync(1000);
    await stopped;
    expect(eventLog.records('transactions')).toHaveLength(RATE + 1);
    expect(simulator.stats).toMatchObject({ transactions: RATE + 1, labels: 0, labelsDropped: RATE + 1 - 5 });
    expect(warnings.filter((w) => w.includes('labels dropped'))).toHaveLength(1);
  });

  it('whose publish fails are counted and said', async () => {
    const log = new MemoryEventLog();
    let labelsTried = 0;
    const eventLog = {
      publish: async (topic: string, records: OutgoingRecord[]) => {
        if (topic !== 'labels') return log.publish(topic, records);
        labelsTried += records.length;
        throw new Error('broker down');
      },
    } as unknown as EventLog;
    // Labels come due a millisecond after their transaction, on average.
    const simulator = run(eventLog, { meanLabelDelayMs: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    const stopped = simulator.stop();
    await vi.advanceTimersByTimeAsync(1000);
    await stopped;
    expect(labelsTried).toBeGreaterThan(RATE / 2);
    expect(simulator.stats).toMatchObject({ labels: 0, labelsDropped: 0, labelPublishErrors: labelsTried });
    expect(warnings.filter((w) => w.includes('label publish failed'))).toHaveLength(1);
  });
});
