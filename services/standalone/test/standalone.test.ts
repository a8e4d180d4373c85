/**
 * `npm start` as a user runs it: the embedded default in one process, with the simulator.
 * Spawns the real entry point and talks to it over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/wait-for.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
let child: ChildProcess;
let output = '';
let url = '';

beforeAll(async () => {
  // At the default LOG_LEVEL (info), as a user starts it: the log lines of the start come too.
  const { LOG_LEVEL: _level, ...environment } = process.env;
  child = spawn(process.execPath, ['--import', 'tsx', 'services/standalone/src/main.ts'], {
    cwd: root,
    env: {
      ...environment,
      PORT: '0',
      KAFKA_BROKERS: '',
      REDIS_URL: '',
      SIMULATOR_RATE: '50',
      SIMULATOR_LABEL_DELAY: '1s',
      // No shedding on event-loop delay: a loaded test machine stalls at times (shedding is tested on its own).
      SHED_EVENT_LOOP_DELAY_MS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1], {
    timeoutMs: 30_000,
    what: `the listening line in: ${output}`,
  });
}, 40_000);

afterAll(async () => {
  child?.kill('SIGTERM');
  await new Promise((resolve) => child?.once('exit', resolve));
});

describe('npm start (embedded default)', () => {
  it('says where it listens on its first line and which parts are embedded', async () => {
    await waitFor(() => output.split('\n').length > 2, { what: 'the first two lines' });
    const [first, second] = output.split('\n');
    expect(first).toMatch(/^Tributary is listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(second).toBe('event log: embedded (in memory); online store: embedded (in memory)');
  });

  it('answers the README curl example with a score from the model', async () => {
    const response = await fetch(`${url}/v1/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        request_id: 't-1',
        entities: { user_id: 'u_1', merchant_id: 'm_1' },
        features: { amount: 125.5, country: 'US', channel: 'web' },
      }),
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    const body = JSON.parse(text) as { prediction_id: string; score: number; model: { name: string; version: string } };
    expect(typeof body.prediction_id).toBe('string');
    expect(body.score).toBeGreaterThanOrEqual(0);
    expect(body.score).toBeLessThanOrEqual(1);
    expect(body.model).toEqual({ name: 'fraud_detector', version: '1' });
  });

  it('runs the simulator through the pipeline and the monitor: features, predictions and labels flow', async () => {
    const metrics = await waitFor(
      async () => {
        const text = await (await fetch(`${url}/metrics`)).text();
        return /tributary_monitor_records_total\{stream="labels",outcome="accepted"\} [1-9]/.test(text) &&
          /tributary_pipeline_events_total\{topic="transactions",outcome="applied"\} [1-9]/.test(text)
          ? text
          : null;
      },
      { timeoutMs: 20_000, what: 'simulated traffic in the metrics' },
    );
    expect(metrics).toMatch(/tributary_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} [1-9]/);
    // The pipeline's keyed state in memory, and its estimated heap.
    expect(metrics).toMatch(/tributary_pipeline_cached_entities\{topic="transactions"\} [1-9]/);
    expect(metrics).toMatch(/tributary_pipeline_cache_bytes\{topic="transactions"\} [1-9]/);
  });

  it("lets a user push events and see that entity's features change", async () => {
    const user = `u_push_${process.pid}`;
    const before = (await (await fetch(`${url}/v1/features/user_id/${user}`)).json()) as { groups: { values: Record<string, unknown> }[] };
    expect(before.groups[0]!.values.count_10m).toBeNull();
    const push = await fetch(`${url}/v1/events/transactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(
        [1, 2, 3].map((i) => ({
          event_id: `push-${i}`,
          user_id: user,
          merchant_id: 'm_1',
          amount: 20 * i,
          currency: 'USD',
          country: 'US',
          channel: 'app',
          ts: new Date().toISOString(),
        })),
      ),
    });
    expect(push.status).toBe(202);
    const after = await waitFor(
      async () => {
        const body = (await (await fetch(`${url}/v1/features/user_id/${user}`)).json()) as {
          groups: { values: Record<string, unknown>; freshness_ms: number }[];
        };
        return body.groups[0]!.values.count_10m === 3 ? body.groups[0]! : null;
      },
      { timeoutMs: 10_000, what: 'the pushed events to be applied' },
    );
    expect(after.values.amount_sum_1h).toBe(120);
    expect(after.freshness_ms).toBeGreaterThanOrEqual(0);
  });
});
