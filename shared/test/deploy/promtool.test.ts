/**
 * promtool (Debian's `prometheus` package; .ci/run installs it) checks the Prometheus
 * configuration and the rule file, and runs the alert unit tests of
 * deploy/prometheus/tests/*.test.yml. Without promtool these tests fail when CI is set,
 * and are skipped with the reason printed otherwise.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './promql.js';

const PROMETHEUS_DIR = join(ROOT, 'deploy/prometheus');

function promtool(...args: string[]) {
  return spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
}

const version = promtool('--version');
const missing = version.error !== undefined;
const skip = missing && !process.env.CI;
if (skip)
  console.warn('skipping the promtool tests: promtool is not on PATH (apt-get install -y prometheus); with CI set they fail instead');

function expectSuccess(result: ReturnType<typeof promtool>) {
  expect(result.error, 'promtool could not run (apt-get install -y prometheus)').toBeUndefined();
  expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
}

describe.skipIf(skip)('promtool', () => {
  it('is installed', () => {
    expect(missing, 'promtool is not on PATH: apt-get install -y prometheus').toBe(false);
  });

  it('check config: prometheus.yml and the rule files it loads are valid', () => {
    const result = promtool('check', 'config', join(PROMETHEUS_DIR, 'prometheus.yml'));
    expectSuccess(result);
    expect(result.stdout).toMatch(/1 rule files found/);
  });

  it('check rules: alerts.yml is valid', () => {
    const result = promtool('check', 'rules', join(PROMETHEUS_DIR, 'alerts.yml'));
    expectSuccess(result);
    expect(result.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('test rules: every alert fires where it should and nowhere else', { timeout: 60_000 }, () => {
    const tests = readdirSync(join(PROMETHEUS_DIR, 'tests')).filter((file) => file.endsWith('.test.yml'));
    expect(tests).toContain('alerts.test.yml');
    const result = promtool('test', 'rules', ...tests.map((file) => join(PROMETHEUS_DIR, 'tests', file)));
    expectSuccess(result);
    expect(result.stdout).toMatch(/SUCCESS/);
  });
});
