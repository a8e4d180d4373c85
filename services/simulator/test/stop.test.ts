/**
 * The simulator's stop waits for what is on its way up to its deadline, then gives it up and
 * counts it: a broker that is down (a publish that never settles) or an inference service
 * that never answers does not hold the stop past the few seconds an orchestrator waits.
 * Simulated time (fake timers).
 */
import { describe, expect, it, vi } from 'vitest';
import { MemoryEventLog, type EventLog, type OutgoingRecord } from '@tributary/shared';
import type { Simulator, SimulatorOptions } from '../src/simulator.js';
import { RATE, simulatedTime, simulatorOn } from './simulated-time.js';

const { warnings } = simulatedTime();
const run = (eventLog: EventLog, options: Partial<SimulatorOptions>) =>
  simulatorOn(eventLog, warnings, { meanLabelDelayMs: 1, ...options });

/** An event log whose topics go down (`down(topic)`): from then on, no publish to them settles. */
function brokerGoingDown() {
  const log = new MemoryEventLog();
  const down = new Set<string>();
  let tries = 0;
  const eventLog = {
    publish: (topic: string, records: OutgoingRecord[]) => {
      tries++;
      return down.has(topic) ? new Promise<void>(() => {}) : log.publish(topic, records);
    },
  } as unknown as EventLog;
  return { eventLog, log, down: (topic: string) => down.add(topic), tries: () => tries };
}

/** Calls stop() and says whether it has resolved after each of `steps` ms of simulated time. */
async function stopOver(simulator: Simulator, steps: number[]) {
  let stopped = false;
  void simulator.stop().then(() => (stopped = true));
  const seen: boolean[] = [];
  for (const ms of steps) {
    await vi.advanceTimersByTimeAsync(ms);
    seen.push(stopped);
  }
  return seen;
}

describe('the simulator stopping', () => {
  it('counts the labels not yet due, which it does not wait for: every published transaction is labelled or counted', async () => {
    const log = new MemoryEventLog();
    const simulator = run(log, { meanLabelDelayMs: 3_600_000 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(await stopOver(simulator, [100])).toEqual([true]);
    const { transactions, publishErrors, labels, labelsDropped, labelPublishErrors, labelsNotDue } = simulator.stats;
    expect(transactions).toBeGreaterThan(RATE);
    expect(labelsNotDue).toBeGreaterThan(RATE);
    expect(labels + labelsDropped + labelPublishErrors + labelsNotDue).toBe(transactions - publishErrors);
    expect(log.records('labels')).toHaveLength(labels);
  });

  it('with the broker down, gives up what has not left at its deadline and counts it as publish errors', async () => {
    const broker = brokerGoingDown();
    const simulator = run(broker.eventLog, { stopTimeoutMs: 3000 });
    await vi.advanceTimersByTimeAsync(1000);
    broker.down('labels');
    await vi.advanceTimersByTimeAsync(500);
    broker.down('transactions');
    await vi.advanceTimersByTimeAsync(1000);
    const published = broker.log.records('transactions').length;
    expect(published).toBeGreaterThan(RATE / 2);
    expect(simulator.stats.inFlight).toBeGreaterThan(RATE / 2);

    expect(await stopOver(simulator, [2999, 1])).toEqual([false, true]);
    const { transactions, publishErrors, labels, labelPublishErrors, inFlight } = simulator.stats;
    expect(inFlight).toBe(0);
    // Every transaction was published or given up; every published one's label too (each came due within ms).
    expect(publishErrors).toBe(transactions - published);
    expect(labels).toBe(broker.log.records('labels').length);
    expect(labelPublishErrors).toBeGreaterThan(0);
    expect(labels + labelPublishErrors).toBe(published);
    expect(warnings.some((w) => w.includes('stopped with transactions and labels not yet published'))).toBe(true);

    // Nothing is tried after the stop.
    const tries = broker.tries();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(broker.tries()).toBe(tries);
    expect(simulator.stats).toMatchObject({ publishErrors, labelPublishErrors });
  });

  it('with an inference service that never answers, cancels its requests at the deadline (5 s by default)', async () => {
    const signals: AbortSignal[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn((_url: string, init: RequestInit) => {
        signals.push(init.signal!);
        return new Promise<Response>((_, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)));
      }),
    );
    const simulator = run(new MemoryEventLog(), { inferenceUrl: 'http://inference.test' });
    await vi.advanceTimersByTimeAsync(1000);
    const sent = simulator.stats.transactions;

    expect(await stopOver(simulator, [4999, 1])).toEqual([false, true]);
    expect(signals).toHaveLength(sent);
    expect(signals.every((signal) => signal.aborted)).toBe(true);
    expect(simulator.stats).toMatchObject({ inFlight: 0, publishErrors: sent, scoreErrors: 0, scored: 0 });
  });

  it('with everything up, resolves once what is on its way has left, before its deadline', async () => {
    const broker = brokerGoingDown();
    const simulator = run(broker.eventLog, {});
    await vi.advanceTimersByTimeAsync(1000);
    expect(await stopOver(simulator, [100])).toEqual([true]);
    expect(simulator.stats).toMatchObject({ inFlight: 0, publishErrors: 0, labelPublishErrors: 0 });
    expect(broker.log.records('transactions')).toHaveLength(simulator.stats.transactions);
    expect(warnings).toEqual([]);
  });
});
