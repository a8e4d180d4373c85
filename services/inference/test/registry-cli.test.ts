import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
