import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('start-up with an invalid configuration', () => {
  it('stops at once with a message naming each invalid variable and what it expects', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'services/standalone/src/main.ts'], {
      cwd: root,
      env: { ...process.env, PORT: 'eighty', KAFKA_BROKERS: 'no-port-here', REDIS_URL: 'http://x' },
      timeout: 30_000,
    }).then(
      () => null,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failure).not.toBeNull();
    expect(failure!.code).toBe(1);
    const output = failure!.stdout + failure!.stderr;
    expect(output).toMatch(/^tributary: cannot start: invalid configuration/);
    expect(output).toMatch(/PORT="eighty": must be an integer between 0 and 65535/);
    expect(output).toMatch(/KAFKA_BROKERS="no-port-here": "no-port-here" is not host:port/);
    expect(output).toMatch(/REDIS_URL="http:\/\/x": must start with redis:\/\/ or rediss:\/\//);
  });

  it('stops every service on a LOG_LEVEL pino does not know with the same message, not a stack trace', async () => {
    const services = { standalone: 'tributary', features: 'features', inference: 'inference', monitor: 'monitor', simulator: 'simulator' };
    const failures = await Promise.all(
      Object.keys(services).map((service) =>
        run(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
          cwd: root,
          env: { ...process.env, PORT: '0', LOG_LEVEL: 'verbose' },
          timeout: 60_000,
        }).then(
          () => null,
          (error: { code: number; stdout: string; stderr: string }) => error,
        ),
      ),
    );
    Object.values(services).forEach((name, i) => {
      const failure = failures[i]!;
      expect(failure, name).not.toBeNull();
      expect(failure.code, name).toBe(1);
      expect(failure.stdout + failure.stderr, name).toBe(
        `${name}: cannot start: invalid configuration:\n  LOG_LEVEL="verbose": must be one of fatal, error, warn, info, debug, trace, silent\n`,
      );
    });
  }, 60_000);

  it('stops when API_KEYS is set and the simulator runs without a key of its own, whose every prediction would be refused', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'services/standalone/src/main.ts'], {
      cwd: root,
      env: { ...process.env, PORT: '0', API_KEYS: 'web:0123456789abcdef', SIMULATOR: 'true', SIMULATOR_API_KEY: '' },
      timeout: 30_000,
    }).then(
      () => null,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failure).not.toBeNull();
    expect(failure!.code).toBe(1);
    const output = failure!.stdout + failure!.stderr;
    expect(output).toMatch(/^tributary: cannot start: invalid configuration/);
    expect(output).toContain('API_KEYS is set, so the simulator needs a key for its predictions: set SIMULATOR_API_KEY');
    expect(output).not.toContain('0123456789abcdef');
  }, 30_000);
});
