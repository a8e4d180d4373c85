/** HTTP as a hostile client sends it: exact bytes and headers (node:http), or raw bytes on a socket. */
import { request } from 'node:http';
import { connect } from 'node:net';

export interface Answer {
  /** The HTTP status, or null when the connection closed (or timed out) without one. */
  status: number | null;
  body: string;
  error?: string;
}

export function send(
  baseUrl: string,
  options: { method?: string; path: string; body?: string | Buffer; headers?: Record<string, string> },
  timeoutMs = 30_000,
): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    const body = options.body === undefined ? undefined : Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'POST',
        path: options.path,
        headers: { ...(body ? { 'content-length': String(body.length) } : {}), ...options.headers },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? null, body: Buffer.concat(chunks).toString('utf8').slice(0, 2000) }));
        res.on('error', (error) => resolve({ status: res.statusCode ?? null, body: '', error: error.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // A server may answer (413) and close before the whole body is sent: that is an answer, not an error.
    req.on('error', (error) => resolve({ status: null, body: '', error: error.message }));
    req.end(body);
  });
}

/** Writes raw bytes, closes the writing side, and reads whatever comes back until the server closes (or the timeout). */
export function sendRaw(baseUrl: string, bytes: Buffer, timeoutMs = 10_000): Promise<Answer> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : null, body: text.slice(0, 500), ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(`still open after ${timeoutMs} ms`), timeoutMs);
    socket.on('connect', () => socket.end(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => finish());
    socket.on('error', (error) => finish(error.message));
  });
}
