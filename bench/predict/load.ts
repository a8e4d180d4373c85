/** Runs the load generators (wrk for the maximum, hey for fixed rates) and parses their reports. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REQUESTS_SCRIPT = fileURLToPath(new URL('./requests.lua', import.meta.url));

export const SAMPLE_BODY = JSON.stringify({
  request_id: 'bench-fixed',
  entities: { user_id: 'u42', merchant_id: 'm7' },
  features: { amount: 125.5, country: 'US', channel: 'web' },
});

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  failed: number;
}

/** A latency the load generators print, in ms to the µs (no float noise from the unit's factor). */
const millis = (value: string, unit: string) =>
  Number((Number(value) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[unit]!).toFixed(3));

/** The highest rate: wrk, one thread, `connections` connections kept busy, random users. */
export async function wrk(url: string, seconds: number, connections: number): Promise<LoadResult> {
  const { stdout } = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', REQUESTS_SCRIPT, url], {
    maxBuffer: 1 << 20,
  });
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(stdout);
    if (!match) throw new Error(`wrk printed no ${p}% latency:\n${stdout}`);
    return millis(match[1]!, match[2]!);
  };
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const failed =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(stdout)?.[1] ?? 0);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    requests,
    failed,
  };
}

/** A fixed rate: hey, `rate` requests/s spread over 10 workers, one body. */
export async function hey(url: string, seconds: number, rate: number): Promise<LoadResult> {
  const workers = 10;
  const { stdout } = await run(
    'hey',
    [
      '-z',
      `${seconds}s`,
      '-c',
      String(workers),
      '-q',
      String(rate / workers),
      '-m',
      'POST',
      '-T',
      'application/json',
      '-d',
      SAMPLE_BODY,
      url,
    ],
    { maxBuffer: 16 << 20 },
  );
  const percentile = (p: string) => {
    const match = new RegExp(`${p}% in ([\\d.]+) secs`).exec(stdout);
    if (!match) throw new Error(`hey printed no ${p}% latency:\n${stdout}`);
    return millis(match[1]!, 's');
  };
  const statuses = [...stdout.matchAll(/\[(\d{3})\]\s+(\d+) responses/g)].map((m) => ({ status: Number(m[1]), count: Number(m[2]) }));
  const requests = statuses.reduce((sum, s) => sum + s.count, 0);
  const failed = statuses.filter((s) => s.status !== 200).reduce((sum, s) => sum + s.count, 0);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    requests,
    failed,
  };
}
