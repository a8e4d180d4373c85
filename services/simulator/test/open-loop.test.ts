/**
 * The simulator sends at its rate whatever the latency of the services, as clients do: a slow
 * or silent inference service, or a publish held by a broker that is down, does not slow it
 * down, up to SIMULATOR_MAX_IN_FLIGHT transactions on their way; beyond, it drops them and
 * counts them. Simulated time (fake timers): counts per simulated second, no wall clock.
 */
import { describe, expect, it, vi } from 'vitest';
import type { EventLog, OutgoingRecord } from '@tributary/shared';
import type { Simulator } from '../src/simulator.js';
import { RATE, simulatedTime, simulatorOn } from './simulated-time.js';

/** An inference API answering each request when `answer` is called, or after `delayMs` of simulated time (0: at once). */
function inferenceApi(delayMs?: number) {
  const waiting: Array<(response: Response) => void> = [];
  const fetch = vi.fn(
    () =>
      new Promise<Response>((resolve) => {
        const answer = () => resolve(new Response('{"score":0.1}'));
        if (delayMs === undefined) waiting.push(resolve);
        else if (delayMs === 0) answer();
        else setTimeout(answer, delayMs);
      }),
  );
  vi.stubGlobal('fetch', fetch);
  return {
    fetch,
    answer: (status: number) => {
      for (const resolve of waiting.splice(0)) resolve(new Response('{}', { status }));
    },
  };
}

/** An event log whose publishes to the transactions topic wait until `release` while `held`. */
function eventLog() {
  const published: Array<{ topic: string; records: OutgoingRecord[] }> = [];
  let held: Promise<void> | undefined;
  let release = () => {};
  const log = {
    publish: async (topic: string, records: OutgoingRecord[]) => {
      published.push({ topic, records });
      if (topic === 'transactions' && held) await held;
    },
  } as unknown as EventLog;
  return {
    log,
    published,
    transactions: () => published.filter((p) => p.topic === 'transactions'),
    hold: () => (held = new Promise<void>((resolve) => (release = resolve))),
    release: () => {
      held = undefined;
      release();
    },
  };
}

const { warnings } = simulatedTime();
const run = (log: EventLog, maxInFlight: number) => simulatorOn(log, warnings, { inferenceUrl: 'http://inference.test', maxInFlight });

const seconds = (n: number) => vi.advanceTimersByTimeAsync(n * 1000);

/** Stops the simulator, its transactions on their way finishing in simulated time. */
async function stop(simulator: Simulator) {
  const stopped = simulator.stop();
  await seconds(2);
  await stopped;
}

describe('the simulator, open loop', () => {
  it('sends at its rate to an inference service that answers after a second', async () => {
    const api = inferenceApi(1000);
    const log = eventLog();
    const simulator = run(log.log, 100);
    await seconds(1);
    for (let second = 2; second <= 5; second++) {
      const before = api.fetch.mock.calls.length;
      await seconds(1);
      expect(api.fetch.mock.calls.length - before).toBe(RATE);
    }
    expect(simulator.stats.dropped).toBe(0);
    expect(simulator.stats.scored).toBeGreaterThanOrEqual(4 * RATE);
    await stop(simulator);
    expect(log.transactions().flatMap((p) => p.records)).toHaveLength(simulator.stats.transactions);
  });

  it('sends at its rate to one that does not answer, up to the bound of transactions in flight, and counts the rest as dropped', async () => {
    const api = inferenceApi();
    const simulator = run(eventLog().log, 50);
    await seconds(2);
    expect(api.fetch).toHaveBeenCalledTimes(2 * RATE + 1);
    await seconds(1);
    expect(api.fetch).toHaveBeenCalledTimes(50);
    expect(simulator.stats).toMatchObject({ transactions: 50, inFlight: 50, dropped: 3 * RATE + 1 - 50 });
    await seconds(20);
    expect(simulator.stats.dropped).toBe(23 * RATE + 1 - 50);
    // Logged at most every 10 s.
    expect(warnings.filter((w) => w.includes('dropped'))).toHaveLength(3);

    // Once it answers (503: the service is up again but failing), sending resumes at the rate.
    api.answer(503);
    await seconds(1);
    expect(simulator.stats).toMatchObject({ scoreErrors: 50, inFlight: RATE });
    expect(api.fetch).toHaveBeenCalledTimes(50 + RATE);
    const stopped = simulator.stop();
    api.answer(503);
    await seconds(1);
    await stopped;
  });

  it('gives up a prediction request after 10 s without an answer, freeing its place', async () => {
    // A service that takes every request and never answers; fetch fails when the request is aborted, as undici's does.
    const fetch = vi.fn(
      (_url: string, init?: RequestInit) =>
        new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason))),
    );
    vi.stubGlobal('fetch', fetch);
    const simulator = run(eventLog().log, 1000);
    await seconds(9.5);
    expect(simulator.stats.scoreErrors).toBe(0);
    await seconds(1);
    // The requests of the first half second have timed out.
    expect(simulator.stats.scoreErrors).toBeGreaterThanOrEqual(RATE / 2);
    await seconds(20);
    expect(simulator.stats.inFlight).toBeLessThanOrEqual(10 * RATE + 1);
    expect(simulator.stats.dropped).toBe(0);
    expect(warnings.some((w) => w.includes('prediction request failed'))).toBe(true);
    // Stopping waits for the requests on their way up to its deadline (5 s), then gives them up.
    const stopped = simulator.stop();
    await seconds(5);
    await stopped;
    expect(simulator.stats.inFlight).toBe(0);
  });

  it('keeps scoring at its rate while a publish is held, and publishes what waited in one batch', async () => {
    const api = inferenceApi(0);
    const log = eventLog();
    log.hold();
    const simulator = run(log.log, 1000);
    await seconds(3);
    expect(api.fetch).toHaveBeenCalledTimes(3 * RATE + 1);
    expect(log.transactions()).toHaveLength(1);
    expect(simulator.stats.inFlight).toBe(3 * RATE + 1);

    log.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(log.transactions().map((p) => p.records.length)).toEqual([1, 3 * RATE]);
    expect(simulator.stats).toMatchObject({ transactions: 3 * RATE + 1, inFlight: 0, publishErrors: 0, dropped: 0 });
    await stop(simulator);
  });
});
