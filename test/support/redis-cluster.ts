/**
 * A real Redis Cluster for a test: three masters (no replicas), each a `redis-server`
 * process with `cluster-enabled yes` on a free port in a temporary directory, joined with
 * `redis-cli --cluster create`. Needs the Debian redis-server package (as .ci/run installs).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from './ports.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RedisClusterFixture {
  /** The seed URLs, comma-separated (as REDIS_URL with REDIS_CLUSTER=true). */
  url: string;
  ports: number[];
  stop(): Promise<void>;
}

/** Whether the binaries are here (else the reason). */
export async function redisClusterUnavailable(): Promise<string | null> {
  for (const binary of ['redis-server', 'redis-cli']) {
    try {
      await run(binary, ['--version']);
    } catch {
      return `${binary} is not installed (Debian package redis-server)`;
    }
  }
  return null;
}

export async function startRedisCluster(masters = 3): Promise<RedisClusterFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-cluster-'));
  const ports: number[] = [];
  const processes: ChildProcess[] = [];
  const stop = async () => {
    for (const child of processes) child.kill('SIGKILL');
    await Promise.all(processes.map((child) => (child.exitCode === null ? new Promise((r) => child.once('exit', r)) : null)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const { port, child } = await startNode(dir);
      ports.push(port);
      processes.push(child);
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) await waitForClusterOk(port);
    return { url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','), ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Starts one cluster node on a free port. The port is free when chosen but may be taken before
 * the node binds it (by any socket of the tests running beside): a node that exits at start is
 * started again on another port.
 */
async function startNode(dir: string): Promise<{ port: number; child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // Every node in its own directory: nodes.conf is per node.
    const nodeDir = mkdtempSync(join(dir, `node-${port}-`));
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '5000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        nodeDir,
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitForPing(port, child);
      return { port, child };
    } catch (error) {
      child.kill('SIGKILL');
      if (attempt >= 5) throw error;
    }
  }
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server on port ${port} exited at start`);
    try {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'ping']);
      if (stdout.trim() === 'PONG') return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitForClusterOk(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
    if (/cluster_state:ok/.test(stdout)) return;
    if (Date.now() > deadline) throw new Error(`the cluster node on port ${port} did not reach cluster_state:ok:\n${stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
