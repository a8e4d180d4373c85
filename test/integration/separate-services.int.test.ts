/**
 * Each service started on its own (`npm start -w services/<name>`), as separate processes on
 * the real Kafka and Redis, with the environment docker-compose.yml gives its container (only
 * the addresses, ports and this run's topic and key names differ): events pushed to the
 * inference API reach the feature pipeline process, its features are served back, and the
 * monitor process counts the logged prediction; then the simulator's traffic flows through all
 * of them, events in to monitor metrics out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
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

/**
 * A service's environment in docker-compose.yml, `${VAR:-default}` read as the shell would
 * give it (`shell`, else the default).
 */
function composeEnvironment(service: string, shell: Record<string, string> = {}): Record<string, string> {
  const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string | number> }>;
  };
  const environment = compose.services[service]?.environment;
  if (!environment) throw new Error(`docker-compose.yml has no environment for ${service}`);
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [
      name,
      String(value).replace(/\$\{(\w+):-([^}]*)\}/g, (_, variable: string, fallback: string) => shell[variable] ?? fallback),
    ]),
  );
}

/** What differs from the containers: where Kafka and Redis are, free ports, and this run's names. */
const ADDRESSES = ['KAFKA_BROKERS', 'REDIS_URL', 'PORT', 'INFERENCE_URL'];

function startService(name: string, env: Record<string, string>): Running {
  let output = '';
  const child = spawn('npm', ['start', '--silent', '-w', `services/${name}`], {
    cwd: root,
    env: { ...process.env, ...env },
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
    const addresses = { KAFKA_BROKERS: services.kafkaBrokers?.join(',') ?? '', REDIS_URL: services.redisUrl ?? '', PORT: '0' };
    // This run's own topics, keys and consumer groups (the broker and Redis are shared).
    const names = {
      REDIS_KEY_PREFIX: `${run}:`,
      CONSUMER_GROUP_PREFIX: run,
      TOPIC_TRANSACTIONS: `${run}-transactions`,
      TOPIC_LABELS: `${run}-labels`,
      TOPIC_PREDICTIONS: `${run}-predictions`,
      TOPIC_DEAD_LETTER: `${run}-dead-letter`,
      TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled-transactions`,
    };
    const envOf = (service: string, shell: Record<string, string> = {}, extra: Record<string, string> = {}) => {
      const compose = composeEnvironment(service, shell);
      // The containers' settings, but for the addresses: nothing else is set here.
      expect(Object.keys(compose).filter((k) => k in names)).toEqual([]);
      return { ...compose, ...addresses, ...extra, ...names };
    };
    const running: Running[] = [];
    const urls: Record<string, string> = {};

    beforeAll(async () => {
      for (const name of ['features', 'inference', 'monitor']) running.push(startService(name, envOf(name)));
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
        // The feature pipeline serves its metrics (and says so) while it starts; /healthz is 503 until it has.
        await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, { timeoutMs: 30_000, what: `${url}/healthz` });
        await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 15_000, what: `${url}/readyz` });
        // Redis and Kafka answer: the operators' deep check passes too.
        await waitFor(async () => (await fetch(`${url}/readyz?deep=true`)).status === 200, {
          timeoutMs: 15_000,
          what: `${url}/readyz?deep=true`,
        });
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

    it("the simulator's traffic flows through every service: events to features, predictions and labels to monitor metrics", async () => {
      // As `SIMULATOR_LABEL_DELAY=1s docker compose up` would run it: labels a second after their transaction.
      const env = envOf('simulator', { SIMULATOR_LABEL_DELAY: '1s' }, { INFERENCE_URL: urls.inference! });
      expect(Object.keys(env).filter((k) => !(k in names) && !ADDRESSES.includes(k))).toEqual([
        'HOST',
        'LOG_LEVEL',
        'SIMULATOR_RATE',
        'SIMULATOR_FRAUD_RATE',
        'SIMULATOR_LABEL_DELAY',
        'SIMULATOR_API_KEY',
      ]);
      running.push(startService('simulator', env));
      const counter = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
      const figures = async () => {
        const [pipeline, monitor] = await Promise.all([
          fetch(`${urls.features}/metrics`).then((r) => r.text()),
          fetch(`${urls.monitor}/metrics`).then((r) => r.text()),
        ]);
        return {
          applied: counter(pipeline, /tributary_pipeline_events_total\{topic="[^"]*transactions",outcome="applied"\} (\d+)/g),
          predictions: counter(monitor, /tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} (\d+)/g),
          joined: counter(monitor, /tributary_monitor_joins_total\{[^}]*outcome="joined"[^}]*\} (\d+)/g),
        };
      };
      const seen = await waitFor(
        async () => {
          const now = await figures();
          return now.applied >= 20 && now.predictions >= 20 && now.joined >= 10 ? now : null;
        },
        { timeoutMs: 45_000, what: 'simulated transactions applied, scored, monitored and joined to their labels' },
      );
      expect(seen.applied).toBeGreaterThanOrEqual(20);
    }, 60_000);
  },
);
