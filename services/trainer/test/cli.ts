/** Runs a trainer CLI as `npm run` would, without the caller's REDIS_URL and KAFKA_BROKERS unless given. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../..', import.meta.url));

export async function runTrainerCli(
  script: 'training-set-cli.ts' | 'batch-predict-cli.ts',
  args: string[],
  options: { cwd: string; env?: Record<string, string>; closedStdout?: boolean },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['REDIS_URL', 'KAFKA_BROKERS'].includes(k)));
  const cli = fileURLToPath(new URL(`../src/${script}`, import.meta.url));
  try {
    // From the repository root (where tsx resolves); paths are relative to INIT_CWD, as under `npm run`.
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', cli, ...args], {
      cwd: root,
      env: { ...clean, INIT_CWD: options.cwd, ...options.env },
      maxBuffer: 64 * 1024 * 1024,
    });
    // A reader that stopped reading before the command wrote anything (`| head -c 0`).
    if (options.closedStdout) run.child.stdout?.destroy();
    const { stdout, stderr } = await run;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
