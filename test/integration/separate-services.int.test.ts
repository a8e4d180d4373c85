/**
 * Each service started on its own (`npm start -w services/<name>`), as separate
 * processes on the real Kafka and Redis: events pushed to the inference API reach the
 * feature pipeline process, its features are served back, and the monitor process counts
 * the logged prediction.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName, waitFor } from '../support/wait-for.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);
const root = fileURLToPath(new URL('../..', import.meta.url));

interface Running {
  child: ChildProcess;
  output: () => string;
}

function startService(name: string, env: Record<string, string>): Running {
  let output = '';
  const child = spawn('npm', ['start', '--silent', '-w', `services/${name}`], {
    cwd: root,
    env: { ...process.env, ...env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that stopping it stops npm and the service under it.
    detached: true,
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

describe.skipIf(!ready)(
  `services started on their own${ready ? '' : ` (skipped: ${services.missing('kafka') || services.missing('redis')})`}`,
  () => {
    const run = uniqueName('svc');
    const env = {
      KAFKA_BROKERS: services.kafkaBrokers?.join(',') ?? '',
      REDIS_URL: services.redisUrl ?? '',
      REDIS_KEY_PREFIX: `${run}:`,
      TOPIC_TRANSACTIONS: `${run}-transactions`,
      TOPIC_LABELS: `${run}-labels`,
      TOPIC_PREDICTIONS: `${run}-predictions`,
      TOPIC_DEAD_LETTER: `${run}-dead-letter`,
      TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
      LOG_LEVEL: 'info',
    };
    const running: Running[] = [];
    const urls: Record<string, string> = {};

    beforeAll(async () => {
      for (const name of ['features', 'inference', 'monitor']) running.push(startService(name, env));
      const [features, inference, monitor] = running as [Running, Running, Running];
      urls.features = await waitFor(() => /metrics on (http:\/\/[\d.]+:\d+)\/metrics/.exec(features.output())?.[1], {
        timeoutMs: 30_000,
        what: 'the feature pipeline',
      });
      urls.inference = await waitFor(() => /listening on (http:\/\/[\d.]+:\d+)/.exec(inference.output())?.[1], {
        timeoutMs: 30_000,
        what: 'the inference service',
      });
      urls.monitor = await waitFor(() => /metrics on (http:\/\/[\d.]+:\d+)\/metrics/.exec(monitor.output())?.[1], {
        timeoutMs: 30_000,
        what: 'the monitor',
      });
    }, 60_000);

    afterAll(async () => {
      await Promise.all(
        running.map(
          (r) =>
            new Promise((resolve) => {
              if (r.child.exitCode !== null) return resolve(undefined);
              r.child.once('exit', resolve);
              process.kill(-r.child.pid!, 'SIGTERM');
            }),
        ),
      );
      const redis = new Redis(services.redisUrl!);
      const keys = await redis.keys(`${run}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    });

    it('every service answers /healthz and /readyz', async () => {
      for (const url of Object.values(urls)) {
        expect((await fetch(`${url}/healthz`)).status).toBe(200);
        await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 15_000, what: `${url}/readyz` });
      }
    });

    it('events pushed to the inference API are applied by the pipeline process and served back; the monitor counts the prediction', async () => {
      const user = `u_${run.replaceAll('-', '_')}`;
      const push = await fetch(`${urls.inference}/v1/events/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          event_id: `${run}-1`,
          user_id: user,
          merchant_id: 'm_1',
          amount: 42,
          currency: 'USD',
          country: 'US',
          channel: 'web',
          ts: Date.now(),
        }),
      });
      expect(push.status).toBe(202);
      await waitFor(
        async () => {
          const body = (await (await fetch(`${urls.inference}/v1/features/user_id/${user}`)).json()) as {
            groups: { values: Record<string, unknown> }[];
          };
          return body.groups[0]!.values.amount_sum_1h === 42;
        },
        { timeoutMs: 30_000, what: 'the pipeline process to apply the event' },
      );
      const predict = await fetch(`${urls.inference}/v1/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          request_id: `${run}-r`,
          entities: { user_id: user, merchant_id: 'm_1' },
          features: { amount: 10, country: 'US', channel: 'web' },
        }),
      });
      expect(predict.status).toBe(200);
      await waitFor(
        async () =>
          /tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 1/.test(
            await (await fetch(`${urls.monitor}/metrics`)).text(),
          ),
        { timeoutMs: 30_000, what: 'the monitor process to count the prediction' },
      );
      expect(await (await fetch(`${urls.features}/metrics`)).text()).toMatch(
        /tributary_pipeline_events_total\{topic="[^"]+",outcome="applied"\} 1/,
      );
    });
  },
);
