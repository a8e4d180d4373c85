/**
 * The services as the faults suite runs them: each its own Node process
 * (`node [its start script's flags] --import tsx services/<name>/src/main.ts`, no npm in between, so that the pid is the
 * service's own for SIGKILL and for its resident memory), its output kept for the checks
 * that read it (secrets, crashes) and its address read from its start-up line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serviceNodeFlags } from '../../support/service-flags.js';
import { waitFor } from '../../support/wait-for.js';
import { INSPECTOR_URL } from './inspector.js';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export type ServiceName = 'features' | 'inference' | 'monitor' | 'simulator';

/** The line each service logs once it serves: the features pipeline and the monitor name their metrics URL, inference its API. */
const READY: Record<ServiceName, RegExp> = {
  features: /metrics on (http:\/\/[\d.]+:\d+)\/metrics/,
  monitor: /metrics on (http:\/\/[\d.]+:\d+)\/metrics/,
  inference: /listening on (http:\/\/[\d.]+:\d+);/,
  simulator: /simulator: ([\d.]+) transactions\/s/,
};

/** Output kept per process at most (the start is kept, and the newest; the middle of a long soak is dropped). */
const MAX_OUTPUT_CHARS = 8_000_000;

export interface ServiceOptions {
  env: Record<string, string>;
  /** Extra `--import` modules (test support preloaded into the service, e.g. the delayed assigner). */
  preload?: string[];
  /** How long start-up may take (a loaded machine compiles the TypeScript slowly). */
  startTimeoutMs?: number;
  /** Open the process's inspector on a free port of 127.0.0.1 (`inspectorUrl`), to read its memory after a collection. */
  inspect?: boolean;
}

export class ServiceProcess {
  readonly child: ChildProcess;
  private readonly inspects: boolean;
  /** The service's HTTP base URL (API or metrics), or null for the simulator. */
  url: string | null = null;
  private chunks: string[] = [];
  private size = 0;
  private dropped = 0;
  private inspector: string | null = null;
  /** Set when the process ended without being asked to (a crash). */
  unexpectedExit: string | null = null;
  private stopping = false;
  readonly exited: Promise<void>;

  constructor(
    readonly name: ServiceName,
    readonly label: string,
    options: ServiceOptions,
  ) {
    this.inspects = options.inspect ?? false;
    const args = [
      ...(options.inspect ? ['--inspect=127.0.0.1:0'] : []),
      ...serviceNodeFlags(name),
      '--import',
      'tsx',
      ...(options.preload ?? []).flatMap((p) => ['--import', p]),
      `services/${name}/src/main.ts`,
    ];
    this.child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => this.append(chunk.toString());
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        if (!this.stopping) this.unexpectedExit = `${this.label} exited by itself (code ${code}, signal ${signal})`;
        resolve();
      });
    });
  }

  private append(text: string): void {
    this.chunks.push(text);
    this.size += text.length;
    // Keep the first chunk (start-up) and drop from the middle.
    while (this.size > MAX_OUTPUT_CHARS && this.chunks.length > 2) {
      const [removed] = this.chunks.splice(1, 1);
      this.size -= removed!.length;
      this.dropped += removed!.length;
    }
  }

  /** Everything the process wrote to stdout and stderr (with a marker where a long output was cut). */
  output(): string {
    if (this.dropped === 0) return this.chunks.join('');
    return `${this.chunks[0]}\n[... ${this.dropped} characters dropped ...]\n${this.chunks.slice(1).join('')}`;
  }

  /** The inspector's WebSocket URL of a process started with `inspect`, once it printed it; else null. */
  get inspectorUrl(): string | null {
    // In the output so far, not chunk by chunk: a chunk may end inside the line.
    if (this.inspects) this.inspector ??= INSPECTOR_URL.exec(this.output())?.[1] ?? null;
    return this.inspector;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the service's URL once it logged its start-up line; throws with its output if it exits or times out first. */
  async ready(timeoutMs = 90_000): Promise<this> {
    const pattern = READY[this.name];
    const match = await waitFor(
      () => {
        if (!this.running) throw new Error(`${this.label} exited during start-up:\n${this.output().slice(-4000)}`);
        return pattern.exec(this.output());
      },
      { timeoutMs, intervalMs: 50, what: `${this.label} to start` },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n--- ${this.label} output ---\n${this.output().slice(-4000)}`);
    });
    this.url = this.name === 'simulator' ? null : match[1]!;
    return this;
  }

  /** Resident set size now, in bytes (from /proc), or null once the process is gone. */
  rss(): number | null {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      return kb === undefined ? null : Number(kb) * 1024;
    } catch {
      return null;
    }
  }

  /** SIGKILL: the crash under test. */
  async kill(): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** A graceful stop (SIGTERM), escalating to SIGKILL after `graceMs`. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Starts a service and waits until it serves. */
export async function startService(name: ServiceName, label: string, options: ServiceOptions): Promise<ServiceProcess> {
  const service = new ServiceProcess(name, label, options);
  try {
    return await service.ready(options.startTimeoutMs);
  } catch (error) {
    await service.kill();
    throw error;
  }
}

/** Starts several services at once; every one that started is added to `into` (for clean-up) even if another fails. */
export async function startServices(
  specs: { name: ServiceName; label?: string; options: ServiceOptions }[],
  into: ServiceProcess[],
): Promise<ServiceProcess[]> {
  const results = await Promise.allSettled(specs.map((s) => startService(s.name, s.label ?? s.name, s.options)));
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  into.push(...started);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return started;
}
