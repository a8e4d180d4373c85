/**
 * The simulator's prediction requests carry the API key it is given (SIMULATOR_API_KEY), as
 * the inference service reads it, so that it is not refused once API_KEYS is set there; and
 * its stop publishes what came due before it.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryEventLog, type Logger } from '@tributary/shared';
import { startSimulator, type Simulator } from '../src/simulator.js';

const SECRET = 'simulator-secret-0001';

let server: Server | undefined;
let simulator: Simulator | undefined;
afterEach(async () => {
  await simulator?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  simulator = undefined;
  server = undefined;
});

/** An inference API that answers 200 to a request with the key, 401 otherwise; resolves with the first request's headers. */
async function inferenceApi(): Promise<{ url: string; firstRequest: Promise<IncomingHttpHeaders> }> {
  let first!: (headers: IncomingHttpHeaders) => void;
  const firstRequest = new Promise<IncomingHttpHeaders>((resolve) => (first = resolve));
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      first(request.headers);
      const keyed = request.headers.authorization === `Bearer ${SECRET}`;
      response.writeHead(keyed ? 200 : 401, { 'content-type': 'application/json' });
      response.end(keyed ? '{"score":0.1}' : '{"code":"UNAUTHORIZED","message":"an API key is required"}');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, firstRequest };
}

function run(url: string, apiKey: string | undefined, warnings: string[] = []) {
  const logger = { warn: (fields: { err?: Error }) => warnings.push(fields.err?.message ?? '') } as unknown as Logger;
  simulator = startSimulator({
    eventLog: new MemoryEventLog(),
    topics: { transactions: 'transactions', labels: 'labels' },
    inferenceUrl: url,
    apiKey,
    ratePerSecond: 50,
    fraudRate: 0.03,
    meanLabelDelayMs: 60_000,
    users: 10,
    seed: 1,
    logger,
  });
  return simulator;
}

describe('the simulator on an inference service with API keys', () => {
  it('sends its key as a bearer token with each prediction request', async () => {
    const api = await inferenceApi();
    run(api.url, SECRET);
    expect((await api.firstRequest).authorization).toBe(`Bearer ${SECRET}`);
    const stats = simulator!.stats;
    await simulator!.stop();
    expect(stats.scoreErrors).toBe(0);
    expect(stats.scored).toBeGreaterThan(0);
  });

  it('without one sends none, and says what to set when it is refused', async () => {
    const api = await inferenceApi();
    const warnings: string[] = [];
    run(api.url, undefined, warnings);
    expect((await api.firstRequest).authorization).toBeUndefined();
    await simulator!.stop();
    expect(warnings[0]).toMatch(/^HTTP 401: .*give the simulator one in SIMULATOR_API_KEY/);
  });
});

describe('the simulator stopping', () => {
  it('publishes the labels that came due before it stopped, lingering in their batch, before stop resolves', async () => {
    const eventLog = new MemoryEventLog();
    simulator = startSimulator({
      eventLog,
      topics: { transactions: 'transactions', labels: 'labels' },
      inferenceUrl: null,
      ratePerSecond: 1000,
      fraudRate: 0.03,
      // Labels come due a millisecond after their transaction, on average: dozens wait in their batch at any time.
      meanLabelDelayMs: 1,
      users: 10,
      seed: 2,
      logger: { warn: () => {} } as unknown as Logger,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await simulator.stop();
    const labelsAtStop = eventLog.records('labels').length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(labelsAtStop).toBeGreaterThan(0);
    expect(eventLog.records('labels')).toHaveLength(labelsAtStop);
    expect(simulator.stats.labels).toBe(labelsAtStop);
  });
});
