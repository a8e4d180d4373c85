/**
 * The simulator's event ids (each its prediction's request id and its label's) are its run's
 * own: a restart with the same seed sends none of the ids of the run before it, which the
 * pipeline would drop as repeated transactions and the label join as repeated labels.
 */
import { describe, expect, it } from 'vitest';
import { MemoryEventLog, type Logger } from '@tributary/shared';
import { createTransactionGenerator } from '../src/generator.js';
import { startSimulator } from '../src/simulator.js';

/** The event ids one start of the simulator publishes: its first transactions (sent at start), until it stops. */
async function runIds(run?: string): Promise<{ run: string; ids: string[] }> {
  const eventLog = new MemoryEventLog();
  const simulator = startSimulator({
    eventLog,
    topics: { transactions: 'transactions', labels: 'labels' },
    inferenceUrl: null,
    ratePerSecond: 10,
    fraudRate: 0.03,
    meanLabelDelayMs: 60_000,
    users: 10,
    seed: 7,
    run,
    logger: { warn: () => {} } as unknown as Logger,
  });
  await simulator.stop();
  const ids = eventLog.records('transactions').map((record) => (JSON.parse(record.value!.toString()) as { event_id: string }).event_id);
  return { run: simulator.run, ids };
}

describe('the simulator event ids', () => {
  it('differ from one start to the next with the same seed', async () => {
    const first = await runIds();
    const second = await runIds();
    expect(first.ids.length).toBeGreaterThan(0);
    expect(second.ids.length).toBeGreaterThan(0);
    expect(second.ids.filter((id) => first.ids.includes(id))).toEqual([]);
    expect(first.run).not.toBe(second.run);
    expect(first.ids[0]).toBe(`e_7_${first.run}_1`);
  });

  it('are those of the run it is given', async () => {
    expect((await runIds('r1')).ids[0]).toBe('e_7_r1_1');
    expect((await runIds('r1')).ids).toEqual((await runIds('r1')).ids);
  });
});

describe('the generator event ids', () => {
  const ids = (run?: string) => {
    const generator = createTransactionGenerator({ seed: 7, users: 10, fraudRate: 0.03, run });
    return Array.from({ length: 3 }, (_, i) => generator.next(i).transaction.event_id);
  };

  it('are e_<seed>_<n> without a run, the same at each replay of the seed', () => {
    expect(ids()).toEqual(['e_7_1', 'e_7_2', 'e_7_3']);
  });

  it('carry the run when given one', () => {
    expect(ids('r1')).toEqual(['e_7_r1_1', 'e_7_r1_2', 'e_7_r1_3']);
  });
});
