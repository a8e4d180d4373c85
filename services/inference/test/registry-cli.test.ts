import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../src/registry-args.js';
import { foreignVersion, logisticVersion, models, tempRegistry, versionFolder } from './models.js';

/** Each test runs the command-line tool several times, each a new Node process compiling its TypeScript: a guard against a hang, wide enough for a loaded CI machine. */
const CLI_TIMEOUT_MS = 120_000;

describe('npm run models (registry CLI)', () => {
  it(
    'lists and registers versions in the registry directory, refusing a version that exists',
    async () => {
      const env = { MODEL_REGISTRY_DIR: tempRegistry() };
      const listed = await models(['list'], env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/model fraud_detector in .*\n {2}version 1 {2}created .* 15 features/);
      const folder = versionFolder(foreignVersion('7'));
      const registered = await models(['register', folder], env);
      expect(registered.stdout).toContain('registered fraud_detector version 7 (3 features)');
      expect((await models(['list'], env)).stdout).toMatch(/version 1 .*\n.*version 7 .* 3 features/);
      const again = await models(['register', folder], env);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already has a version 7; versions are immutable/);
      // A model file that is not the one its manifest's hash names is refused, and not registered.
      const six = foreignVersion('6');
      const damaged = await models(['register', versionFolder({ ...six, manifest: { ...six.manifest, sha256: 'a'.repeat(64) } })], env);
      expect([damaged.code, damaged.stderr]).toEqual([
        1,
        expect.stringMatching(/^error: model\.onnx: sha256 \w+ does not match the manifest's a{64}\n$/),
      ]);
      // A version whose manifest cannot be read is listed as damaged, with the reason.
      mkdirSync(join(env.MODEL_REGISTRY_DIR, 'fraud_detector', '8'));
      writeFileSync(join(env.MODEL_REGISTRY_DIR, 'fraud_detector', '8', 'manifest.json'), '{"name":');
      expect((await models(['list'], env)).stdout).toMatch(/version 7 .*\n {2}version 8 {2}DAMAGED \(never served\): .*manifest\.json/);
      // A file whose hash matches its manifest but that onnxruntime cannot load is damaged too.
      const garbage = Buffer.from('not an ONNX model');
      const nine = join(env.MODEL_REGISTRY_DIR, 'fraud_detector', '9');
      mkdirSync(nine);
      const manifest = { ...foreignVersion('9').manifest, sha256: createHash('sha256').update(garbage).digest('hex') };
      writeFileSync(join(nine, manifest.file), garbage);
      writeFileSync(join(nine, 'manifest.json'), JSON.stringify(manifest));
      expect((await models(['list'], env)).stdout).toMatch(/ {2}version 9 {2}DAMAGED \(never served\): onnxruntime cannot load/);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'answers bad usage with the reason and the usage, exit code 2',
    async () => {
      const env = { MODEL_REGISTRY_DIR: tempRegistry() };
      const unknown = await models(['frobnicate'], env);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/unknown command "frobnicate"\nusage: npm run models/);
      const noRedis = await models(['promote', '1', '--reason', 'x'], env);
      expect(noRedis.code).toBe(2);
      expect(noRedis.stderr).toMatch(/REDIS_URL is not set/);
      const broken = await models(['register', mkdtempSync(join(tmpdir(), 'empty-'))], env);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/cannot read .*manifest\.json/);
      // Options parseArgs refuses, and a registry that is a file: a message, never a stack trace.
      for (const args of [
        ['list', '--frobnicate'],
        ['audit', '--model'],
      ]) {
        const wrong = await models(args, env);
        expect([wrong.code, wrong.stderr]).toEqual([2, expect.stringMatching(/^error: .*\nusage: npm run models/)]);
      }
      const file = join(mkdtempSync(join(tmpdir(), 'registry-file-')), 'file');
      writeFileSync(file, 'x');
      const notADirectory = await models(['register', join(env.MODEL_REGISTRY_DIR, 'fraud_detector', '1')], { MODEL_REGISTRY_DIR: file });
      expect([notADirectory.code, notADirectory.stderr]).toEqual([1, expect.stringMatching(/^error: ENOTDIR: not a directory/)]);
      const help = await models(['--help'], env);
      expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: npm run models/)]);
      // A canary's share is what the rollout accepts: 0 and 100 are refused, as bad usage like a share that is no number.
      expect(help.stdout).toContain('canary <version> --percent <more than 0, less than 100>');
      for (const percent of ['abc', '150', '0']) {
        const share = await models(['rollout', 'canary', '1', '--percent', percent, '--reason', 'x'], {
          ...env,
          REDIS_URL: 'redis://127.0.0.1:1',
        });
        expect([share.code, share.stderr]).toEqual([
          2,
          expect.stringMatching(/rollout canary needs --percent <more than 0, less than 100>/),
        ]);
      }
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'refuses an argument or an option the command does not take, exit code 2, before Redis is reached',
    async () => {
      // Redis would not answer: refused before it is asked.
      const env = { MODEL_REGISTRY_DIR: tempRegistry(), REDIS_URL: 'redis://127.0.0.1:1' };
      const extra = await models(['promote', '3', 'extra-arg', '--reason', 'c'], env);
      expect([extra.code, extra.stderr]).toEqual([2, expect.stringMatching(/^error: promote: unexpected argument "extra-arg"\nusage: /)]);
      const percent = await models(['rollout', 'champion', '--percent', '10', '--reason', 'c'], env);
      expect([percent.code, percent.stderr]).toEqual([2, expect.stringMatching(/^error: --percent is only for rollout canary\nusage: /)]);
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'says the routing store does not answer instead of waiting for a Redis Cluster that cannot be reached',
    async () => {
      const env = { MODEL_REGISTRY_DIR: tempRegistry(), REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER: 'true' };
      const unreachable = await models(['audit'], env);
      expect([unreachable.code, unreachable.stderr]).toEqual([1, expect.stringMatching(/the routing store \(Redis\) did not answer/)]);
      // register does not touch the routing: it works without that Redis.
      const registered = await models(['register', versionFolder(logisticVersion('5', 0.01, -2))], env);
      expect([registered.code, registered.stdout]).toEqual([0, expect.stringMatching(/registered fraud_detector version 5/)]);
    },
    CLI_TIMEOUT_MS,
  );
});

describe('the registry command line', () => {
  const refusal = (argv: string[]) => {
    try {
      parseCommandLine(argv);
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };

  it('takes each command with its own arguments and options', () => {
    expect(parseCommandLine(['promote', '3', '--reason', ' better AUC ', '--by', 'ana', '--model', 'm'])).toEqual({
      command: { name: 'promote', version: '3', reason: 'better AUC' },
      model: 'm',
      by: 'ana',
    });
    expect(parseCommandLine(['rollback', '--reason', 'r']).command).toEqual({ name: 'rollback', reason: 'r' });
    expect(parseCommandLine(['rollout', 'ab', '1:50,2:50', '--entity', 'user_id', '--shadow', '3', '--reason', 'r']).command).toEqual({
      name: 'rollout',
      policy: {
        kind: 'ab',
        arms: [
          { version: '1', weight: 50 },
          { version: '2', weight: 50 },
        ],
        entity: 'user_id',
      },
      shadows: ['3'],
      reason: 'r',
    });
    expect(parseCommandLine(['rollout', 'canary', '2', '--percent', '10', '--reason', 'r']).command).toMatchObject({
      policy: { kind: 'canary', version: '2', percent: 10 },
    });
    // Without --shadow the current shadows stay (undefined); --no-shadows ends them.
    expect(parseCommandLine(['rollout', 'champion', '--reason', 'r']).command).toMatchObject({ shadows: undefined });
    expect(parseCommandLine(['rollout', 'champion', '--no-shadows', '--reason', 'r']).command).toMatchObject({ shadows: [] });
    expect(parseCommandLine(['audit', '--limit', '5', '--model', 'm'])).toEqual({ command: { name: 'audit', limit: 5 }, model: 'm' });
    expect(parseCommandLine(['list', '--help']).command).toEqual({ name: 'help' });
  });

  it('refuses an argument the command does not take', () => {
    expect(refusal(['rollback', '1', '--reason', 'x'])).toBe(
      'rollback: unexpected argument "1" (rollback returns to the previous champion; promote <version> serves a given one)',
    );
    expect(refusal(['promote', '3', 'extra-arg', '--reason', 'c'])).toBe('promote: unexpected argument "extra-arg"');
    expect(refusal(['rollout', 'champion', '2', '--reason', 'c'])).toBe('rollout champion: unexpected argument "2"');
    expect(refusal(['rollout', 'bandit', '1,2', '3', '--reason', 'c'])).toBe('rollout bandit: unexpected argument "3"');
    expect(refusal(['list', 'all'])).toBe('list: unexpected argument "all"');
    expect(refusal(['audit', '20'])).toBe('audit: unexpected argument "20"');
    expect(refusal(['register', 'a', 'b'])).toBe('register: unexpected argument "b"');
    expect(refusal(['promote', '', '--reason', 'c'])).toBe('promote needs the version');
  });

  it('refuses an option the command (or rollout policy) does not take, and one given twice', () => {
    expect(refusal(['promote', '3', '--reason', 'c', '--percent', '50'])).toBe('--percent is only for rollout canary');
    expect(refusal(['promote', '3', '--reason', 'c', '--entity', 'user_id'])).toBe('--entity is only for rollout ab');
    expect(refusal(['rollout', 'champion', '--percent', '10', '--reason', 'c'])).toBe('--percent is only for rollout canary');
    expect(refusal(['rollout', 'canary', '2', '--percent', '10', '--entity', 'user_id', '--reason', 'c'])).toBe(
      '--entity is only for rollout ab',
    );
    expect(refusal(['list', '--reason', 'c'])).toBe('--reason is only for promote, rollback and rollout');
    expect(refusal(['list', '--limit', '5'])).toBe('--limit is only for audit');
    expect(refusal(['audit', '--shadow', '2'])).toBe('--shadow is only for rollout');
    expect(refusal(['promote', '2', '--no-shadows', '--reason', 'c'])).toBe('--no-shadows is only for rollout');
    expect(refusal(['rollout', 'champion', '--shadow', '2', '--no-shadows', '--reason', 'c'])).toBe(
      '--shadow and --no-shadows together: name the shadows, or none',
    );
    expect(refusal(['register', 'dir', '--model', 'm'])).toMatch(/^--model is only for list, audit, promote, rollback and rollout/);
    expect(refusal(['promote', '3', '--reason', 'a', '--reason', 'b'])).toBe('--reason is given twice');
  });

  it('refuses blank names and malformed A/B arms rather than using a default or part of them', () => {
    expect(refusal(['rollout', 'ab', '1:50,2:50', '--entity', '', '--reason', 'c'])).toBe('--entity must not be empty');
    expect(refusal(['promote', '3', '--reason', 'c', '--by', ' '])).toBe('--by must not be empty');
    expect(refusal(['promote', '3', '--reason', 'c', '--model', ''])).toBe('--model must not be empty');
    expect(refusal(['promote', '3', '--reason', ' '])).toBe('promote needs --reason "<why>" (kept in the audit log)');
    expect(refusal(['rollout', 'ab', '2:1:5,3:1', '--reason', 'c'])).toBe('A/B arm "2:1:5" must be <version>:<weight>');
    for (const arm of ['2', ':5', '2:', '2: ']) expect(refusal(['rollout', 'ab', `${arm},3:1`, '--reason', 'c'])).toMatch(/^A\/B arm /);
    expect(refusal(['rollout', 'bandit', '1,,2', '--reason', 'c'])).toBe('rollout bandit: an empty item in "1,,2"');
    expect(refusal(['rollout', 'canary', '2', '--percent', ' ', '--reason', 'c'])).toBe('--percent must not be empty');
    // Kept in the audit log as one line, and of a bounded length (a command line of ~30,000 characters crashed onnxruntime).
    expect(refusal(['promote', '3', '--reason', 'x'.repeat(1001)])).toBe(
      '--reason is 1001 characters long; at most 1000 (kept in the audit log)',
    );
    expect(refusal(['promote', '3', '--reason', 'ok\n2026-12-03 revision 9 promote by admin'])).toMatch(
      /^--reason has a control character/,
    );
    expect(refusal(['promote', '3', '--reason', 'r', '--by', 'a\tb'])).toMatch(/^--by has a control character/);
    expect(refusal(['register', 'd'.repeat(5000)])).toBe('argument 2 is 5000 characters long; at most 4096');
    expect(parseCommandLine(['promote', '3', '--reason', 'é'.repeat(1000)]).command).toMatchObject({ reason: 'é'.repeat(1000) });
  });
});
