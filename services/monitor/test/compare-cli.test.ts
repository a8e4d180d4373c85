import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Each test runs the command-line tool several times, each a new Node process compiling its TypeScript: a guard against a hang, wide enough for a loaded CI machine. */
const CLI_TIMEOUT_MS = 120_000;

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = fileURLToPath(new URL('../src/compare-cli.ts', import.meta.url));
let dir = '';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
function run(args: string[], closedStdout = false): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', cli, ...args],
      // Runs from the repository root (where tsx resolves); file names are relative to INIT_CWD, as under `npm run`.
      { cwd: root, env: { ...process.env, INIT_CWD: dir } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
    // A reader that stopped reading before the command wrote anything (`| head -c 0`).
    if (closedStdout) child.stdout?.destroy();
  });
}

// Prediction-log records; the current sample's amounts are shifted by +40.
const record = (i: number, shift: number, label?: 0 | 1) => ({
  prediction_id: `p${i}`,
  request_id: `r${i}`,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  request: { merchant_category: ['grocery', 'travel', 'online'][i % 3] },
  features: { amount: (i % 50) + shift, hour: i % 24 },
  score: ((i * 37) % 100) / 100,
  ...(label === undefined ? {} : { label }),
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-compare-'));
  const lines = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  await writeFile(
    join(dir, 'ref.ndjson'),
    lines(Array.from({ length: 200 }, (_, i) => record(i, 0, ((i * 37) % 100) / 100 > 0.6 ? 1 : 0))),
  );
  await writeFile(join(dir, 'cur.ndjson'), lines(Array.from({ length: 150 }, (_, i) => record(i, 40))));
  // Flat rows whose fields are named as Object.prototype's properties; the current toString shifted by +40.
  const named = (i: number, shift: number) => ({ toString: (i % 50) + shift, ['__proto__']: ['a', 'b'][i % 2], constructor: i % 7 });
  await writeFile(join(dir, 'named-ref.ndjson'), lines(Array.from({ length: 100 }, (_, i) => named(i, 0))));
  await writeFile(join(dir, 'named-cur.ndjson'), lines(Array.from({ length: 100 }, (_, i) => named(i, 40))));
  // Dumps of the predictions topic: each request's champion record (v1, as in ref.ndjson), the record
  // of the shadow v2 beside it (scores turned round; in the current dump amounts +40), and another model's records.
  const label = (i: number) => (((i * 37) % 100) / 100 > 0.6 ? 1 : 0);
  const dump = (rows: number, shadowShift: number) =>
    lines([
      ...Array.from({ length: rows }, (_, i) => [
        record(i, 0, label(i)),
        {
          ...record(i, shadowShift, label(i)),
          prediction_id: `s${i}`,
          model: { name: 'fraud_detector', version: '2' },
          variant: 'shadow',
          score: 1 - ((i * 37) % 100) / 100,
        },
      ]).flat(),
      ...Array.from({ length: 30 }, (_, i) => ({ ...record(i, 80), model: { name: 'card_risk', version: '1' } })),
    ]);
  await writeFile(join(dir, 'dump-ref.ndjson'), dump(200, 0));
  await writeFile(join(dir, 'dump-cur.ndjson'), dump(150, 40));
  await writeFile(
    join(dir, 'bad.ndjson'),
    '{"features":{"amount":1},"score":0.5}\n{"features":{"amount":2},"score":0.5}\n{"features": oops}\n',
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('monitor compare (CLI)', () => {
  it(
    'prints a drift table and exits 0',
    async () => {
      const result = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--features', 'amount,hour,merchant_category']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^amount\s+numeric\s+200\s+150 .*DRIFT$/m);
      expect(result.stdout).toMatch(/^hour\s+numeric .* ok$/m);
      expect(result.stdout).toMatch(/^merchant_category\s+categorical .*chi-square\(2\)/m);
      expect(result.stdout).toMatch(/drift: amount \(alpha 0.05, Bonferroni over 3 features/);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'says once, without a stack trace, that stdout was closed before the report was written (exit 1)',
    async () => {
      const result = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--format', 'json'], true);
      expect([result.code, result.stderr]).toEqual([1, 'monitor compare: stdout was closed before the end of the output (EPIPE)\n']);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'prints JSON with --format json',
    async () => {
      const result = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--format', 'json', '--threshold', '0.6']);
      expect(result.code).toBe(0);
      const report = JSON.parse(result.stdout);
      expect(report.features.map((f: { name: string }) => f.name)).toEqual(['amount', 'hour']);
      expect(report.drifted).toEqual(['amount']);
      expect(report.threshold).toBe(0.6);
      expect(report.quality.reference.count).toBe(200);
      expect(report.quality.current).toBeNull();
      expect(report.estimated).toMatchObject({ estimated: true, calibrated: true, count: 150 });
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'exits 1 naming the file that cannot be read',
    async () => {
      const result = await run(['--reference', 'missing.ndjson', '--current', 'cur.ndjson']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/cannot read the reference file missing.ndjson/);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'exits 1 naming the file and line of a malformed record',
    async () => {
      const result = await run(['--reference', 'ref.ndjson', '--current', 'bad.ndjson']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/bad.ndjson:3: not valid JSON/);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'exits 1 naming a score, label or slice field that no record holds (a typo, not a sample without them)',
    async () => {
      for (const [flag, name] of [
        ['--score-field', 'scroe'],
        ['--label-field', 'lable'],
        ['--slice-field', 'contry'],
      ]) {
        const result = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', flag!, name!]);
        expect([result.code, result.stdout]).toEqual([1, '']);
        expect(result.stderr).toMatch(
          new RegExp(`^monitor compare: ${flag} ${name}: no record of ref.ndjson or cur.ndjson has a field of that name`),
        );
      }
      // Named and present in one sample only: compared as before.
      expect((await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--label-field', 'label'])).code).toBe(0);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'exits 2 with the usage on bad arguments',
    async () => {
      const missing = await run(['--current', 'cur.ndjson']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/--reference is required/);
      expect(missing.stderr).toMatch(/usage: monitor compare/);
      const threshold = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--threshold', '2']);
      expect(threshold.code).toBe(2);
      expect(threshold.stderr).toMatch(/--threshold must be a number in \[0, 1\], got "2"/);
      const twice = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--features', 'amount,hour,amount']);
      expect(twice.code).toBe(2);
      expect(twice.stderr).toMatch(/--features lists "amount" twice/);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'exits 2 on a field read as two things, an empty feature list or item, and a flag given twice',
    async () => {
      const refused = async (args: string[], message: string) => {
        const result = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', ...args]);
        expect([result.code, result.stdout, result.stderr]).toEqual([
          2,
          '',
          expect.stringMatching(new RegExp(`^monitor compare: ${message}`)),
        ]);
      };
      // The score read as the label (an accuracy of 1), a slice that is the score.
      await refused(
        ['--score-field', 'label'],
        '--score-field and --label-field both name "label": the score, label and slice fields must differ',
      );
      await refused(['--slice-field', 'score'], '--score-field and --slice-field both name "score"');
      await refused(['--slice-field', ''], '--slice-field must not be empty');
      await refused(['--features', ''], '--features must list the features to compare \\(without it, all are\\)');
      await refused(['--features', ',amount'], '--features: an empty item in ",amount"');
      await refused(['--current', 'ref.ndjson'], '--current is given twice');
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "leaves out the shadows' records by default: a request counts once, with the score that answered it",
    async () => {
      const result = await run(['--reference', 'ref.ndjson', '--current', 'dump-cur.ndjson', '--format', 'json']);
      expect([result.code, result.stderr]).toEqual([0, '']);
      const report = JSON.parse(result.stdout);
      // The 150 champion records and the other model's 30; the 150 shadow records left out.
      expect(report.current).toEqual({ file: 'dump-cur.ndjson', rows: 180, excluded: 150 });
      expect(report.reference).toEqual({ file: 'ref.ndjson', rows: 200, excluded: 0 });
      expect(report.quality.current.count).toBe(150);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'compares the records of the model, version and variants asked for, in both files',
    async () => {
      const champion = await run(['--reference', 'dump-ref.ndjson', '--current', 'dump-cur.ndjson', '--model', 'fraud_detector']);
      expect([champion.code, champion.stderr]).toEqual([0, '']);
      const leftOut = (file: string, rows: number, excluded: number) =>
        `${file} (${rows} rows; ${excluded} records of other models, versions or variants left out)`;
      expect(champion.stdout).toContain(`reference: ${leftOut('dump-ref.ndjson', 200, 230)}\n`);
      expect(champion.stdout).toContain(`current:   ${leftOut('dump-cur.ndjson', 150, 180)}\n`);
      // The champion's inputs and scores are the same in both: no drift, and the scores of the answers only.
      expect(champion.stdout).toMatch(/^drift: none /m);
      expect(champion.stdout).toMatch(/^\(score\)\s+numeric\s+200\s+150 .* ok$/m);

      const flags = ['--model', 'fraud_detector', '--version', '2', '--variant', 'shadow'];
      const shadow = await run(['--reference', 'dump-ref.ndjson', '--current', 'dump-cur.ndjson', ...flags]);
      expect([shadow.code, shadow.stderr]).toEqual([0, '']);
      expect(shadow.stdout).toContain(`current:   ${leftOut('dump-cur.ndjson', 150, 180)}\n`);
      expect(shadow.stdout).toMatch(/^amount\s+numeric\s+200\s+150 .*DRIFT$/m);

      const none = await run(['--reference', 'dump-ref.ndjson', '--current', 'dump-cur.ndjson', '--model', 'fraud_detectr']);
      expect([none.code, none.stdout]).toEqual([1, '']);
      expect(none.stderr).toMatch(
        /^monitor compare: dump-ref.ndjson: no records of the model, version and variants asked for \(430 others left out\)$/m,
      );
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'takes flat rows without a model, version or variant as they are, and refuses an unknown variant or an empty name',
    async () => {
      const flat = await run(['--reference', 'named-ref.ndjson', '--current', 'named-cur.ndjson', '--model', 'm', '--version', '1']);
      expect([flat.code, flat.stderr]).toEqual([0, '']);
      expect(flat.stdout).toMatch(/^reference: named-ref.ndjson \(100 rows\)$/m);
      const variant = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--variant', 'champion,shdow']);
      expect(variant.code).toBe(2);
      expect(variant.stderr).toMatch(/--variant must list variants among champion, canary, shadow, ab, bandit, got "shdow"/);
      expect(variant.stderr).toMatch(/usage: monitor compare .*\[--variant champion,canary,ab,bandit\]/);
      const empty = await run(['--reference', 'ref.ndjson', '--current', 'cur.ndjson', '--version', ' ']);
      expect([empty.code, empty.stderr]).toEqual([2, expect.stringMatching(/--version must not be empty/)]);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    "compares fields of any name, Object.prototype's too",
    async () => {
      const result = await run(['--reference', 'named-ref.ndjson', '--current', 'named-cur.ndjson']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^toString\s+numeric\s+100\s+100 .*DRIFT$/m);
      expect(result.stdout).toMatch(/^__proto__\s+categorical\s+100\s+100 .*chi-square\(1\).* ok$/m);
      expect(result.stdout).toMatch(/^constructor\s+numeric\s+100\s+100 .* ok$/m);
    },
    CLI_TIMEOUT_MS,
  );
});
