/**
 * `npm start` on a real broker, stopped by SIGTERM (a Ctrl-C, `docker stop`) while its parts
 * start: it answers predictions from the listening line on, while the pipeline's and the
 * monitor's consumers still join their groups (seconds on Kafka); the stop must close what has
 * started, so the answered predictions reach the prediction log and the process exits 0.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KafkaEventLog, readTopicToEnd } from '@tributary/shared';
import { realServices } from '../../../test/integration/services.js';
import { uniqueName, waitFor } from '../../../test/support/wait-for.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const services = realServices();
const missing = services.kafkaBrokers ? undefined : services.missing('kafka');

describe.skipIf(missing !== undefined)(`npm start stopped while it starts${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('closes what has started: the predictions it answered are in the prediction log, and it exits 0', async () => {
    const run = uniqueName('stop-starting');
    const predictions = `${run}-predictions`;
    const { LOG_LEVEL: _level, ...environment } = process.env;
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/standalone/src/main.ts'], {
      cwd: root,
      env: {
        ...environment,
        PORT: '0',
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: '',
        SIMULATOR: 'false',
        SHED_EVENT_LOOP_DELAY_MS: '0',
        CONSUMER_GROUP_PREFIX: run,
        TOPIC_TRANSACTIONS: `${run}-transactions`,
        TOPIC_LABELS: `${run}-labels`,
        TOPIC_PREDICTIONS: predictions,
        TOPIC_LABELLED_TRANSACTIONS: `${run}-labelled`,
        TOPIC_DEAD_LETTER: `${run}-dead-letter`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (code, signal) => resolve([code, signal])),
    );
    const url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1], {
      timeoutMs: 60_000,
      what: 'the listening line',
    }).catch((error: unknown) => {
      child.kill('SIGKILL');
      throw new Error(`${(error as Error).message}; output:\n${output}`);
    });
    const ids = [1, 2, 3, 4, 5].map((i) => `${run}-${i}`);
    for (const id of ids) {
      const response = await fetch(`${url}/v1/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          request_id: id,
          entities: { user_id: 'u_1', merchant_id: 'm_1' },
          features: { amount: 10, country: 'US', channel: 'web' },
        }),
      });
      expect(response.status, await response.text()).toBe(200);
    }
    // Still starting: the window this test is about.
    expect(output).not.toMatch(/ready in/);
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
    expect(output).not.toMatch(/ready in/);

    const log = new KafkaEventLog({ brokers: services.kafkaBrokers!, clientId: run, sessionTimeout: 6_000 });
    try {
      const records = (await readTopicToEnd(log, predictions, { timeoutMs: 30_000 })).flat();
      expect(records.map((r) => r.key).sort()).toEqual(ids);
    } finally {
      await log.close();
    }
  }, 120_000);
});
