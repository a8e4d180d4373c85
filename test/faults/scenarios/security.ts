/**
 * Scenario 6, security. The services run with secrets configured: API keys for the client
 * and admin routes, and a Redis password in REDIS_URL (a private redis-server with
 * `requirepass`). Then:
 * - every admin route is called without a key, with a wrong key, with a client key and with
 *   malformed credentials: each must be refused with 401 (403 for the client key, known but not
 *   allowed there); with the admin key none may be;
 *   the client routes refuse a request without the client key;
 * - the services are made to log (refused requests, Redis killed under traffic and
 *   restarted, start-ups refused for an invalid configuration that holds the password);
 * - every byte they wrote to stdout and stderr, and their /metrics, are searched for each
 *   secret (as is, URL-encoded and base64): none may appear.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createTopic } from '../../support/topics.js';
import { waitFor } from '../../support/wait-for.js';
import type { Context } from '../lib/context.js';
import { send } from '../lib/http.js';
import { SteadyLoad } from '../lib/load.js';
import { scrape } from '../lib/metrics.js';
import { ROOT, startServices, type ServiceProcess } from '../lib/processes.js';
import { PrivateRedis } from '../lib/redis-server.js';
import { emptyRow, type Row } from '../lib/report.js';

const secret = (what: string) => `faults-${what}-${randomBytes(12).toString('hex')}`;

/** Runs a service that must refuse to start; resolves with everything it wrote. */
function refusedStart(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/inference/src/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      // It started after all: not refused (the check reports it); no need to wait.
      if (/listening on/.test(output)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export async function securityScenario(ctx: Context): Promise<Row> {
  const row = emptyRow('6. security');
  const run = ctx.name('security');
  const secrets = { redisPassword: secret('redis-password'), clientKey: secret('client-key'), adminKey: secret('admin-key') };
  const redis = await PrivateRedis.start({ password: secrets.redisPassword });
  ctx.defer(() => redis.stop());
  const topics = {
    TOPIC_TRANSACTIONS: `${run}-transactions`,
    TOPIC_PREDICTIONS: `${run}-predictions`,
    TOPIC_DEAD_LETTER: `${run}-dead-letter`,
  };
  for (const topic of Object.values(topics)) await createTopic(ctx.brokers, topic, 1);
  const env = {
    KAFKA_BROKERS: ctx.brokers.join(','),
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: `${run}:`,
    CONSUMER_GROUP_PREFIX: run,
    API_KEYS: `client:${secrets.clientKey}`,
    ADMIN_API_KEYS: `ops:${secrets.adminKey}`,
    FEATURE_FETCH_TIMEOUT_MS: '100',
    SHED_EVENT_LOOP_DELAY_MS: '0',
    // Everything the services say, debug included.
    LOG_LEVEL: 'debug',
    ...topics,
  };
  const processes: ServiceProcess[] = [];
  ctx.defer(async () => {
    for (const p of processes) await p.kill();
  });
  await startServices(
    (['inference', 'features', 'monitor'] as const).map((name) => ({ name, options: { env } })),
    processes,
  );
  const inference = processes[0]!;
  const url = inference.url!;

  // --- Admin routes -------------------------------------------------------------------
  const routes: { method: string; path: string; body?: unknown }[] = [
    { method: 'GET', path: '/admin/models/fraud_detector' },
    { method: 'GET', path: '/admin/models/fraud_detector/audit' },
    { method: 'POST', path: '/admin/models/fraud_detector/versions', body: { manifest: {}, model_base64: 'AAAA' } },
    { method: 'POST', path: '/admin/models/fraud_detector/promote', body: { version: '1', reason: 'faults suite' } },
    { method: 'POST', path: '/admin/models/fraud_detector/rollback', body: { reason: 'faults suite' } },
    { method: 'POST', path: '/admin/models/fraud_detector/rollout', body: { policy: { kind: 'champion' }, reason: 'faults suite' } },
    { method: 'POST', path: '/admin/models/fraud_detector/feedback', body: { version: '1', reward: 1, trials: 2 } },
  ];
  const credentials: [string, Record<string, string>][] = [
    ['no key', {}],
    ['a wrong key', { authorization: `Bearer ${secret('wrong')}` }],
    ['the client key', { authorization: `Bearer ${secrets.clientKey}` }],
    ['the client key as x-api-key', { 'x-api-key': secrets.clientKey }],
    ['"Bearer" and nothing', { authorization: 'Bearer' }],
    ['Basic credentials', { authorization: `Basic ${Buffer.from(`ops:${secrets.adminKey}`).toString('base64')}` }],
    ['the admin key with a character dropped', { authorization: `Bearer ${secrets.adminKey.slice(0, -1)}` }],
  ];
  let requests = 0;
  let errors5xx = 0;
  const accepted: string[] = [];
  const refusedWithKey: string[] = [];
  for (const route of routes) {
    const body = route.body === undefined ? undefined : JSON.stringify(route.body);
    const contentType: Record<string, string> = body ? { 'content-type': 'application/json' } : {};
    for (const [name, headers] of credentials) {
      const answer = await send(url, { method: route.method, path: route.path, body, headers: { ...contentType, ...headers } });
      requests++;
      if (answer.status !== null && answer.status >= 500) errors5xx++;
      // A client's key is known but not allowed on the admin routes: 403; any other credential 401.
      const refusal = name.startsWith('the client key') ? 403 : 401;
      if (answer.status !== refusal) accepted.push(`${route.method} ${route.path} with ${name}: ${answer.status}`);
    }
    const answer = await send(url, {
      method: route.method,
      path: route.path,
      body,
      headers: { ...contentType, authorization: `Bearer ${secrets.adminKey}` },
    });
    requests++;
    if (answer.status === null || answer.status >= 500) errors5xx++;
    if (answer.status === 401 || answer.status === 403) refusedWithKey.push(`${route.method} ${route.path}: ${answer.status}`);
  }
  const predictBody = JSON.stringify({
    request_id: 'sec-1',
    entities: { user_id: 'u_1', merchant_id: 'm_1' },
    features: { amount: 1, country: 'US', channel: 'web' },
  });
  const clientProbes = await Promise.all([
    send(url, { path: '/v1/predict', body: predictBody, headers: { 'content-type': 'application/json' } }),
    send(url, {
      path: '/v1/predict',
      body: predictBody,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secrets.adminKey}` },
    }),
    send(url, {
      path: '/v1/predict',
      body: predictBody,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${secrets.clientKey}` },
    }),
  ]);
  requests += clientProbes.length;
  const clientStatuses = clientProbes.map((a) => a.status);

  // --- Make them log: Redis killed under traffic and back, refused start-ups -----------
  const load = new SteadyLoad({ url, clients: 2, pauseMs: 20, run, headers: { authorization: `Bearer ${secrets.clientKey}` } });
  ctx.defer(() => load.stop());
  await waitFor(() => load.answered > 20, { timeoutMs: 30_000, what: 'predictions with the client key' });
  await redis.kill();
  const degradedBefore = load.figures.degraded;
  await waitFor(() => load.figures.degraded > degradedBefore + 20, { timeoutMs: 30_000, what: 'degraded predictions while Redis is down' });
  await redis.restart();
  const answered = load.answered - load.figures.degraded;
  await waitFor(() => load.answered - load.figures.degraded > answered + 20, {
    timeoutMs: 60_000,
    what: 'whole predictions once Redis is back',
  });
  const figures = await load.stop();
  requests += figures.requests;
  errors5xx += figures.errors5xx + figures.unanswered;
  const badConfigs: [string, Record<string, string>][] = [
    ['MODEL_THREADS=many', { MODEL_THREADS: 'many' }],
    ['REDIS_URL with a password and port 99999999', { REDIS_URL: `redis://:${secrets.redisPassword}@127.0.0.1:99999999` }],
    ['REDIS_URL http:// with a password', { REDIS_URL: `http://:${secrets.redisPassword}@127.0.0.1:${redis.port}` }],
    ['API_KEYS with one secret for two ids', { API_KEYS: `client:${secrets.clientKey},other:${secrets.clientKey}` }],
    ['ADMIN_API_KEYS with an id that has a space', { ADMIN_API_KEYS: `bad id:${secrets.adminKey}` }],
  ];
  const refused = await Promise.all(badConfigs.map(([, bad]) => refusedStart({ ...env, ...bad })));

  // --- Search everything they wrote, and their metrics --------------------------------
  const texts: [string, string][] = [];
  for (const p of processes) {
    texts.push([`${p.label} output`, p.output()]);
    texts.push([`${p.label} /metrics`, (await scrape(p.url!)).text]);
  }
  refused.forEach((r, i) => texts.push([`refused start-up ${i + 1}`, r.output]));
  const forms = (value: string) => [value, encodeURIComponent(value), Buffer.from(value).toString('base64')];
  const leaks: string[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    for (const form of forms(value)) {
      for (const [where, text] of texts) if (text.includes(form)) leaks.push(`${name} in ${where}`);
    }
  }
  const bytes = texts.reduce((n, [, text]) => n + text.length, 0);

  row.faults = `${routes.length * credentials.length} unauthorised admin calls, Redis SIGKILL, ${refused.length} bad configs`;
  row.requests = requests;
  row.errors5xx = errors5xx;
  row.degraded = figures.degraded;
  row.checks.push(
    {
      name: "admin routes refuse every request without a valid admin key (401; 403 for a client's key)",
      ok: accepted.length === 0,
      detail: accepted.length === 0 ? `${routes.length * credentials.length} refused` : accepted.slice(0, 6).join('; '),
    },
    {
      name: 'admin routes accept the admin key',
      ok: refusedWithKey.length === 0,
      detail: refusedWithKey.join('; ') || `${routes.length} routes`,
    },
    {
      name: 'client routes refuse a request without the client key (401), accept it with (200)',
      ok: clientStatuses[0] === 401 && clientStatuses[1] === 401 && clientStatuses[2] === 200,
      detail: `no key ${clientStatuses[0]}, the admin key ${clientStatuses[1]}, the client key ${clientStatuses[2]}`,
    },
    {
      name: 'invalid configurations refused at start',
      ok: refused.every((r) => r.code === 1),
      detail: refused
        .map((r, i) => `${badConfigs[i]![0]}: ${r.code === 1 ? r.output.trim().split('\n').at(-1)!.trim().slice(0, 110) : 'STARTED'}`)
        .join(' | '),
    },
    {
      name: 'no secret in logs or metrics (as is, URL-encoded, base64)',
      ok: leaks.length === 0,
      detail: leaks.length === 0 ? `${Object.keys(secrets).length} secrets, ${Math.round(bytes / 1024)} KiB searched` : leaks.join('; '),
    },
    {
      name: 'no process exited by itself',
      ok: processes.every((p) => p.running),
      detail: processes.map((p) => p.unexpectedExit ?? `${p.label} running`).join(', '),
    },
  );
  return row;
}
