/**
 * Batch prediction gives the online service's scores: requests answered by the real app
 * (features written by the real pipeline) are scored again by the batch CLI from the events
 * file, point in time, and by the live-store path from the same store; bad lines are named.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraud, planFeatures } from '@tributary/shared';
import { loadModel, readModelVersion } from '@tributary/inference';
import { parseCsvRequests, parseNdjsonRequests, scoreRequests, type RequestShape } from '../src/batch-predict.js';
import { onlineStates } from '../src/point-in-time.js';
import { runTrainerCli } from './cli.js';
import { startOnlineScenario, type OnlineScenario, type ScoredRequest } from './online-scenario.js';

/** Each test runs the command-line tool several times, each a new Node process compiling its TypeScript: a guard against a hang, wide enough for a loaded CI machine. */
const CLI_TIMEOUT_MS = 120_000;

const MODEL_DIR = new URL('../../../models/fraud_detector/1', import.meta.url).pathname;
const HOUR = 3_600_000;
let scenario: OnlineScenario;
let dir: string;
beforeAll(async () => {
  scenario = await startOnlineScenario({ count: 60, spanMs: 2 * HOUR, scoreEvery: 3, seed: 11 });
  dir = await mkdtemp(join(tmpdir(), 'tributary-batch-'));
  await writeFile(join(dir, 'events.ndjson'), scenario.transactions.map((t) => `${JSON.stringify(t)}\n`).join(''));
}, 60_000);
afterAll(async () => {
  await scenario?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const scoresOf = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { request_id: string; score: number; at: number });

describe('batch-predict', () => {
  it('scores NDJSON and CSV requests as the online service did at their times (to 1e-6)', async () => {
    const { scored } = scenario;
    expect(scored.length).toBe(20);
    await writeFile(join(dir, 'requests.ndjson'), scored.map((s) => `${JSON.stringify({ ...s.body, at: s.at })}\n`).join(''));
    const csv = [
      'request_id,at,user_id,merchant_id,amount,country,channel',
      ...scored.map((s) => {
        const { request_id, entities, features } = s.body;
        return [
          request_id,
          new Date(s.at).toISOString(),
          entities.user_id,
          entities.merchant_id,
          features.amount,
          features.country,
          features.channel,
        ].join(',');
      }),
    ].join('\n');
    await writeFile(join(dir, 'requests.csv'), `${csv}\n`);
    for (const file of ['requests.ndjson', 'requests.csv']) {
      const run = await runTrainerCli('batch-predict-cli.ts', ['--model', MODEL_DIR, '--requests', file, '--events', 'events.ndjson'], {
        cwd: dir,
      });
      expect(run.stderr).toContain('batch-predict: scored 20 request(s) with fraud_detector version 1');
      expect(run.stderr).toMatch(
        /^ {2}replay of transactions: 60 records, 60 accepted \(0 with a duplicate event id\), 0 late, 0 invalid, 0 malformed$/m,
      );
      expect(run.stderr).not.toMatch(/WARNING/);
      expect(run.code).toBe(0);
      const batch = scoresOf(run.stdout);
      expect(batch.map((b) => b.request_id)).toEqual(scored.map((s) => s.body.request_id));
      batch.forEach((b, i) => {
        expect(b).toMatchObject({ model: 'fraud_detector', version: '1', at: scored[i]!.at });
        expect(Math.abs(b.score - scored[i]!.score)).toBeLessThan(1e-6);
      });
      // The requests differ: equal scores are not a constant.
      expect(new Set(batch.map((b) => b.score.toFixed(6))).size).toBeGreaterThan(10);
    }
  }, 60_000);

  it(
    'reads the live online store as the service does, now',
    async () => {
      const now = Date.now();
      const bodies = scenario.scored.slice(0, 6).map((s, i) => ({ ...s.body, request_id: `live-${i}` }));
      const online: ScoredRequest[] = [];
      for (const body of bodies) online.push(await scenario.predictAt(body, now));
      const manifest = (await readModelVersion(MODEL_DIR)).manifest;
      const example = fraud.fraudExample();
      const plan = planFeatures(manifest.features, example.catalog, manifest.defaults ?? {});
      const model = await loadModel(MODEL_DIR);
      try {
        const batch = await scoreRequests(
          bodies.map((b) => ({ where: 'x', request_id: b.request_id, entities: b.entities, features: b.features, at: now })),
          { plan, states: onlineStates(scenario.store), model },
        );
        batch.forEach((b, i) => expect(Math.abs(b.score - online[i]!.score)).toBeLessThan(1e-6));
      } finally {
        await model.close();
      }
    },
    CLI_TIMEOUT_MS,
  );
  it('names the online store when it does not answer', async () => {
    const source = onlineStates({ read: () => Promise.reject(new Error('connection refused')) }, 'the online store (Redis at redis://x)');
    const plan = planFeatures((await readModelVersion(MODEL_DIR)).manifest.features, fraud.fraudExample().catalog);
    await expect(source.states(plan, [{ entities: { user_id: 'u1', merchant_id: 'm1' }, request: {}, at: 0 }])).rejects.toThrow(
      'the online store (Redis at redis://x) did not answer: connection refused',
    );
  });

  it('stops at bad lines, naming each, or skips and counts them with --on-error skip', async () => {
    const good = { ...scenario.scored[0]!.body, at: scenario.scored[0]!.at };
    await writeFile(
      join(dir, 'bad.ndjson'),
      [
        JSON.stringify(good),
        '{"request_id": "x",',
        JSON.stringify({ ...good, request_id: 'neg', features: { ...good.features, amount: -1 } }),
        '',
      ].join('\n'),
    );
    const failed = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'bad.ndjson', '--events', 'events.ndjson'],
      { cwd: dir },
    );
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr).toContain('2 bad request line(s), nothing scored');
    expect(failed.stderr).toMatch(/bad\.ndjson:2: invalid JSON/);
    expect(failed.stderr).toMatch(/bad\.ndjson:3: features\.amount: /);
    const skipped = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'bad.ndjson', '--events', 'events.ndjson', '--on-error', 'skip', '--out', 'scores.ndjson'],
      { cwd: dir },
    );
    expect(skipped.code).toBe(0);
    expect(skipped.stderr).toMatch(/scored 1 request\(s\) .*\n.*\n {2}skipped 2 bad line\(s\):\n {4}bad\.ndjson:2: /);
    const usage = await runTrainerCli('batch-predict-cli.ts', ['--model', MODEL_DIR, '--requests', 'bad.ndjson'], { cwd: dir });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/give the features/);
    // A blank time is no time (not now), and neither is a day its month does not have.
    for (const at of ['--at=', '--at=2026-02-31T00:00:00Z']) {
      const badTime = await runTrainerCli(
        'batch-predict-cli.ts',
        ['--model', MODEL_DIR, '--requests', 'bad.ndjson', '--events', 'events.ndjson', at],
        {
          cwd: dir,
        },
      );
      expect([badTime.code, badTime.stdout]).toEqual([2, '']);
      expect(badTime.stderr).toMatch(/--at: ".*" is not a time/);
    }
    // Skipping every line is no result: exit 1, nothing written.
    await writeFile(join(dir, 'all-bad.ndjson'), '{"request_id": "x",\n');
    const none = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'all-bad.ndjson', '--events', 'events.ndjson', '--on-error', 'skip'],
      { cwd: dir },
    );
    expect([none.code, none.stdout]).toEqual([1, '']);
    expect(none.stderr).toMatch(/none of the 1 request line\(s\) could be read, nothing scored:\n {2}all-bad\.ndjson:1: /);
    // Nor is a file without a request (empty, or blank lines only).
    await writeFile(join(dir, 'empty.ndjson'), '\n\n');
    const empty = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'empty.ndjson', '--events', 'events.ndjson', '--out', 'empty-scores.ndjson'],
      { cwd: dir },
    );
    expect([empty.code, empty.stdout]).toEqual([1, '']);
    expect(empty.stderr).toMatch(/empty\.ndjson: no request in the file, nothing scored/);
    await expect(stat(join(dir, 'empty-scores.ndjson'))).rejects.toThrow(/ENOENT/);
    // Events of which none can be read (the labels file by mistake) would leave every feature at its default.
    await writeFile(join(dir, 'labels.ndjson'), '{"request_id":"r1","label":1,"ts":1}\n');
    const wrongEvents = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'bad.ndjson', '--events', 'labels.ndjson', '--on-error', 'skip'],
      { cwd: dir },
    );
    expect([wrongEvents.code, wrongEvents.stdout]).toEqual([1, '']);
    expect(wrongEvents.stderr).toMatch(
      /none of the 1 events of source "transactions" could be applied \(0 late, 1 invalid, 0 malformed\): their features would be their defaults in every row; nothing scored/,
    );
    // A source the features are not computed from is named, not ignored (every feature at its default).
    const unknownSource = await runTrainerCli(
      'batch-predict-cli.ts',
      ['--model', MODEL_DIR, '--requests', 'bad.ndjson', '--events', 'payments=events.ndjson', '--on-error', 'skip'],
      { cwd: dir },
    );
    expect([unknownSource.code, unknownSource.stdout]).toEqual([2, '']);
    expect(unknownSource.stderr).toMatch(/--events payments=events\.ndjson: unknown source "payments" \(known: transactions, /);
  }, 60_000);

  it(
    'warns as the training set does when many events were late: an events file sorted by card holder, not by arrival',
    async () => {
      const byUser = [...scenario.transactions].sort((a, b) => a.user_id.localeCompare(b.user_id) || Number(a.ts) - Number(b.ts));
      await writeFile(join(dir, 'by-user.ndjson'), byUser.map((t) => `${JSON.stringify(t)}\n`).join(''));
      const [first] = scenario.scored;
      await writeFile(join(dir, 'one-request.ndjson'), `${JSON.stringify({ ...first!.body, at: first!.at })}\n`);
      const run = await runTrainerCli(
        'batch-predict-cli.ts',
        ['--model', MODEL_DIR, '--requests', 'one-request.ndjson', '--events', 'by-user.ndjson'],
        {
          cwd: dir,
        },
      );
      expect(run.code).toBe(0);
      const late =
        /^ {2}replay of transactions: 60 records, \d+ accepted \(0 with a duplicate event id\), (\d+) late, 0 invalid, 0 malformed$/m.exec(
          run.stderr,
        )?.[1];
      expect(Number(late)).toBeGreaterThanOrEqual(3);
      expect(run.stderr).toMatch(
        new RegExp(
          `^batch-predict: WARNING: ${late} of the 60 events of source "transactions" \\(\\d+%\\) were late .* Is the input in arrival order\\?`,
          'm',
        ),
      );
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'reading a topic, fails at once naming the broker when none answers, with no retry log of the Kafka client',
    async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as net.AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      const [first] = scenario.scored;
      await writeFile(join(dir, 'one-request.ndjson'), `${JSON.stringify({ ...first!.body, at: first!.at })}\n`);
      const run = await runTrainerCli(
        'batch-predict-cli.ts',
        ['--model', MODEL_DIR, '--requests', 'one-request.ndjson', '--events-topic', 'transactions'],
        {
          cwd: dir,
          env: { KAFKA_BROKERS: `127.0.0.1:${port}` },
        },
      );
      expect([run.code, run.stdout]).toEqual([1, '']);
      expect(run.stderr).toBe(`batch-predict: failed: no Kafka broker of KAFKA_BROKERS answers: 127.0.0.1:${port} (ECONNREFUSED)\n`);
    },
    CLI_TIMEOUT_MS,
  );
});

describe('request files', () => {
  const example = fraud.fraudExample();
  const shape: RequestShape = {
    entityTypes: ['user_id', 'merchant_id'],
    requestFields: fraud.FraudRequestFieldsSchema,
    plan: planFeatures(fraud.FRAUD_MODEL_FEATURES, example.catalog),
    model: { name: 'fraud_detector', version: '1' },
    defaultAt: 1_000,
    allowAt: true,
  };
  it('name the line and field of each bad NDJSON request, and default `at`', async () => {
    const lines = [
      '{"request_id":"a","entities":{"user_id":"u","merchant_id":"m"},"features":{"amount":1,"country":"FR","channel":"web"}}',
      '{"request_id":"b","entities":{"user_id":"u"},"features":{"amount":1,"country":"FR","channel":"web"}}',
      '',
      '{"request_id":"c","entities":{"user_id":"u","merchant_id":"m"},"features":{"amount":1,"country":"FR","channel":"fax"}}',
      '{"request_id":"d","entities":{"user_id":"u","merchant_id":"m"},"features":{"amount":1,"country":"FR","channel":"web"},"at":"yesterday"}',
      '{"request_id":"e","entities":{"user_id":"u","merchant_id":"m"},"features":{"amount":1,"country":"FR","channel":"web"},"at":"2026-01-01T00:00:00Z"}',
    ];
    const parsed = await parseNdjsonRequests(lines.join('\n'), 'r.ndjson', shape);
    expect(parsed.requests.map((r) => [r.request_id, r.at, r.where])).toEqual([
      ['a', 1_000, 'r.ndjson:1'],
      ['e', Date.UTC(2026, 0, 1), 'r.ndjson:6'],
    ]);
    expect(parsed.rejected.map((r) => r.where)).toEqual(['r.ndjson:2', 'r.ndjson:4', 'r.ndjson:5']);
    expect(parsed.rejected[0]!.detail).toMatch(/entities\.merchant_id/);
    expect(parsed.rejected[1]!.detail).toMatch(/^features\.channel/);
    expect(parsed.rejected[2]!.detail).toMatch(/^at/);
    expect((await parseNdjsonRequests(lines[5]!, 'r.ndjson', { ...shape, allowAt: false })).rejected[0]!.detail).toMatch(
      /live online store/,
    );
  });

  it('read CSV columns by name (bare or dotted), numbers by the request schema, and name bad lines', async () => {
    const csv = [
      'request_id,entities.user_id,merchant_id,features.amount,country,channel',
      'a,u1,m1,12.5,FR,web',
      'b,u1,m1,lots,FR,web',
      'c,u1,m1,3,FR',
      '"d",u1,m1,4,"DE",pos',
    ].join('\n');
    const parsed = await parseCsvRequests(csv, 'r.csv', shape);
    expect(parsed.requests.map((r) => [r.request_id, r.features, r.entities, r.where])).toEqual([
      ['a', { amount: 12.5, country: 'FR', channel: 'web' }, { user_id: 'u1', merchant_id: 'm1' }, 'r.csv:2'],
      ['d', { amount: 4, country: 'DE', channel: 'pos' }, { user_id: 'u1', merchant_id: 'm1' }, 'r.csv:5'],
    ]);
    expect(parsed.rejected.map((r) => r.where)).toEqual(['r.csv:3', 'r.csv:4']);
    expect(parsed.rejected[0]!.detail).toMatch(/^features\.amount/);
    expect(parsed.rejected[1]!.detail).toMatch(/columns length/);
    expect((await parseCsvRequests('request_id,colour\na,red\n', 'r.csv', shape)).rejected).toEqual([
      { where: 'r.csv:1', detail: expect.stringMatching(/unknown column\(s\) "colour"/) },
    ]);

    // Refused: a field given twice (which value would count?), a name of Object's prototype.
    expect((await parseCsvRequests('request_id,amount,features.amount\na,1,2\n', 'r.csv', shape)).rejected).toEqual([
      { where: 'r.csv:1', detail: expect.stringMatching(/column "amount" is given twice/) },
    ]);
    expect((await parseCsvRequests('request_id,__proto__\na,1\n', 'r.csv', shape)).rejected).toEqual([
      { where: 'r.csv:1', detail: expect.stringMatching(/unknown column\(s\) "__proto__"/) },
    ]);
    // A spreadsheet's byte-order mark is not part of the first column's name.
    const bom = await parseCsvRequests('\uFEFF' + csv.split('\n').slice(0, 2).join('\n'), 'r.csv', shape);
    expect([bom.rejected, bom.requests.map((r) => r.request_id)]).toEqual([[], ['a']]);
  });
});
