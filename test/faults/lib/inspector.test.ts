import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { INSPECTOR_URL, retainedMemory } from './inspector.js';

const MB = 1024 * 1024;

/**
 * A Node process with its inspector open that runs `script`, which ends by printing one JSON
 * line; resolves with the inspector's URL and that line.
 */
function start(script: string): Promise<{ child: ChildProcess; url: string; printed: Record<string, number> }> {
  const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const settle = () => {
      const url = INSPECTOR_URL.exec(stderr)?.[1];
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (url && line) resolve({ child, url, printed: JSON.parse(line) as Record<string, number> });
    };
    child.stdout!.on('data', (chunk: Buffer) => ((stdout += chunk.toString()), settle()));
    child.stderr!.on('data', (chunk: Buffer) => ((stderr += chunk.toString()), settle()));
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

// A million small objects, kept through enough collections to reach the old generation.
const MILLION_OBJECTS = 'let objects = Array.from({ length: 1_000_000 }, (_, i) => ({ i, s: String(i) }));';

describe('retainedMemory', () => {
  it('collects garbage before reading: a heap of dropped objects reads as empty', async () => {
    const { url, printed } = await start(
      `${MILLION_OBJECTS} objects = null; console.log(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed })); setInterval(() => {}, 1000);`,
    );
    expect(printed.heapUsed).toBeGreaterThan(40 * MB);
    const memory = await retainedMemory(url);
    expect(memory.heapUsed).toBeLessThan(20 * MB);
    expect(memory.rss).toBeGreaterThan(memory.heapUsed);
  });

  it('counts what the process holds, on the heap and in Buffers', async () => {
    const { url } = await start(
      `${MILLION_OBJECTS} globalThis.kept = { objects, buffer: Buffer.alloc(32 * 1024 * 1024, 1) }; console.log('{}'); setInterval(() => {}, 1000);`,
    );
    const memory = await retainedMemory(url);
    expect(memory.heapUsed).toBeGreaterThan(40 * MB);
    expect(memory.external).toBeGreaterThanOrEqual(32 * MB);
  });

  it('rejects with the URL when no inspector answers', async () => {
    await expect(retainedMemory('ws://127.0.0.1:9/none', 2_000)).rejects.toThrow('ws://127.0.0.1:9/none');
  });
});
