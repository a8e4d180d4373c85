/**
 * A private `redis-server` for the scenarios that stop Redis (the shared one on 6379 is left
 * alone): a free port and a temporary directory. With `durable`, every write is in the
 * append-only file, fsynced before Redis answers (`appendfsync always`), so a SIGKILL loses
 * nothing acknowledged and a restart brings the same data back, as a production Redis with
 * persistence does.
 */
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../../support/ports.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '../../support/wait-for.js';

const run = promisify(execFile);

export interface PrivateRedisOptions {
  durable?: boolean;
  password?: string;
}

export class PrivateRedis {
  private process: ChildProcess | null = null;
  private readonly dir = mkdtempSync(join(tmpdir(), 'tributary-faults-redis-'));
  /** Times the server was killed and started again. */
  restarts = 0;

  private constructor(
    readonly port: number,
    private readonly options: PrivateRedisOptions,
  ) {}

  /** On a free port; one taken between its choice and the bind (a server that exits at start) is replaced by another. */
  static async start(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
    for (let attempt = 1; ; attempt++) {
      const redis = new PrivateRedis(await freePort(), options);
      try {
        await redis.launch();
        return redis;
      } catch (error) {
        await redis.stop();
        if (attempt >= 5) throw error;
      }
    }
  }

  /** `redis://[:password@]127.0.0.1:port`. */
  get url(): string {
    return `redis://${this.options.password ? `:${encodeURIComponent(this.options.password)}@` : ''}127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--dir', this.dir];
    args.push('--appendonly', this.options.durable ? 'yes' : 'no');
    if (this.options.durable) args.push('--appendfsync', 'always');
    if (this.options.password) args.push('--requirepass', this.options.password);
    this.process = spawn('redis-server', args, { stdio: 'ignore' });
    const child = this.process;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with code ${child.exitCode}`);
        const auth = this.options.password ? ['--no-auth-warning', '-a', this.options.password] : [];
        const { stdout } = await run('redis-cli', ['-p', String(this.port), ...auth, 'ping']);
        return stdout.trim() === 'PONG';
      },
      { timeoutMs: 20_000, intervalMs: 50, what: `redis-server on port ${this.port} to answer PING` },
    );
  }

  /** SIGKILL: Redis gone at once, mid-command for whoever was talking to it. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts it again on the same port and directory (the append-only file brings the data back when durable). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
    this.restarts++;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
