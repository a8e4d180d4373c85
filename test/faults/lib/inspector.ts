/**
 * A process's retained memory, read over its inspector (a service started with
 * `--inspect=127.0.0.1:0`): a full garbage collection (`HeapProfiler.collectGarbage`), then
 * `process.memoryUsage()` in the process. What is left on the heap after a full collection
 * is what the process holds; the RSS alone cannot tell that from garbage V8 has not
 * collected yet (a heap that grew by 60 MiB under load and was not given back within a
 * 90 s soak, 2026-12-02).
 */
import { WebSocket } from 'undici';

export interface RetainedMemory {
  /** V8 heap in use after the collection, bytes. */
  heapUsed: number;
  /** Memory of JavaScript objects held outside the heap (Buffers, ArrayBuffers), bytes. */
  external: number;
  /** Resident set size just after the collection, bytes. */
  rss: number;
}

/** `ws://127.0.0.1:<port>/<id>`, as Node prints it on stderr: "Debugger listening on ws://…". */
export const INSPECTOR_URL = /Debugger listening on (ws:\/\/[\d.]+:\d+\/[\w-]+)/;

/** Collects the process's garbage and reads its memory; rejects after `timeoutMs`. */
export async function retainedMemory(inspectorUrl: string, timeoutMs = 10_000): Promise<RetainedMemory> {
  const socket = new WebSocket(inspectorUrl);
  const replies = new Map<number, (reply: { result?: unknown; error?: { message: string } }) => void>();
  let nextId = 1;
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      replies.set(id, (reply) => (reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve(reply.result)));
      socket.send(JSON.stringify({ id, method, params }));
    });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      (async () => {
        await new Promise<void>((resolve, reject) => {
          socket.onopen = () => resolve();
          socket.onerror = () => reject(new Error(`cannot connect to the inspector at ${inspectorUrl}`));
        });
        socket.onmessage = (event) => {
          const reply = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
          if (reply.id !== undefined) replies.get(reply.id)?.(reply);
        };
        await call('HeapProfiler.collectGarbage');
        const evaluated = (await call('Runtime.evaluate', {
          expression: 'JSON.stringify(process.memoryUsage())',
          returnByValue: true,
        })) as { result: { value: string } };
        const usage = JSON.parse(evaluated.result.value) as NodeJS.MemoryUsage;
        return { heapUsed: usage.heapUsed, external: usage.external, rss: usage.rss };
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the inspector at ${inspectorUrl} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    socket.close();
  }
}
