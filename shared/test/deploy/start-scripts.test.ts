/**
 * `npm start` (the whole system) and `npm start -w services/<name>` (a service alone, as the README
 * runs them): a SIGTERM to npm reaches the service. npm forwards it to the script's shell; a shell
 * that ran tsx as its child would end and leave tsx and node running, still consuming. Each start
 * script `exec`s tsx (which relays the signal to node), and a service started so is checked to stop
 * with all of its processes. So does every other script that runs a program with tsx (`npm run
 * models`, a bench, `test:faults`, which CI stops with a SIGTERM when out of time).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/wait-for.js';
import { ROOT, serviceEntries } from './deployment.js';

const scripts = (dir: string) =>
  (JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
const startScript = (dir: string) => scripts(dir).start;

/** Whether any process of the group is alive. */
const groupAlive = (pgid: number) => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('start scripts', () => {
  it('exec the service in place of the shell, in every service and at the root', () => {
    const dirs = ['.', ...[...serviceEntries().values()].filter((s) => s.runnable).map((s) => `services/${s.name}`)];
    expect(dirs.length).toBeGreaterThan(4);
    for (const dir of dirs) expect(startScript(dir), dir).toMatch(/^exec tsx /);
  });

  it('and every other script that runs a program with tsx (command-line tools, benches) exec it too', () => {
    const dirs = ['.', 'shared', ...readdirSync(join(ROOT, 'services')).map((name) => `services/${name}`)];
    const runs = dirs.flatMap((dir) =>
      Object.entries(scripts(dir))
        .filter(([, script]) => /\btsx\b/.test(script))
        .map(([name, script]) => ({ script: `${dir} ${name}`, runs: script })),
    );
    expect(runs.length).toBeGreaterThan(15);
    // The program the script ends with replaces the shell (one run before it, in `a && b`, ends first).
    for (const { script, runs: command } of runs) expect(command, script).toMatch(/(?:^|&& )exec tsx [^&|;]+$/);
  });

  it('stop with every process of the service when npm gets SIGTERM', { timeout: 60_000 }, async () => {
    // The simulator starts without its broker (it retries its publishes) and logs once it runs.
    const npm = spawn('npm', ['start', '-w', 'services/simulator'], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:1', INFERENCE_URL: 'http://127.0.0.1:1', LOG_LEVEL: 'info' },
    });
    const pgid = npm.pid!;
    let output = '';
    npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => npm.once('exit', resolve));
    try {
      await waitFor(() => output.includes('transactions/s to'), { timeoutMs: 50_000, what: 'the simulator running' });
      npm.kill('SIGTERM');
      await exited;
      await waitFor(() => !groupAlive(pgid), { timeoutMs: 10_000, what: 'no process of the service left' });
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  });
});
