/**
 * Measures what a new user feels: time from `npm start` to the first answered prediction,
 * and the latency of one prediction over HTTP (sequential requests, median and p99),
 * on the embedded default. Usage: npx tsx scripts/measure-start.ts [requests]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const requests = Number(process.argv[2] ?? 2000);
const root = fileURLToPath(new URL('..', import.meta.url));
const started = performance.now();
const child = spawn('npm', ['start', '--silent'], {
  cwd: root,
  env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
let output = '';
child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
let url: string | undefined;
while (!(url = /listening on (http:\/\/[\d.]+:\d+)/.exec(output)?.[1])) {
  if (performance.now() - started > 60_000) throw new Error(`no listening line: ${output}`);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
const listening = performance.now() - started;
const body = JSON.stringify({
  request_id: 't-1',
  entities: { user_id: 'u_1', merchant_id: 'm_1' },
  features: { amount: 125.5, country: 'US', channel: 'web' },
});
const predict = async () => {
  const t = performance.now();
  const response = await fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
  await response.json();
  return performance.now() - t;
};
const first = await predict();
const firstAnswer = performance.now() - started;
const samples: number[] = [];
for (let i = 0; i < requests; i++) samples.push(await predict());
samples.sort((a, b) => a - b);
const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!.toFixed(3);
console.log(
  `npm start -> listening: ${listening.toFixed(0)} ms; -> first prediction answered: ${firstAnswer.toFixed(0)} ms (first request ${first.toFixed(1)} ms)`,
);
console.log(
  `one prediction over HTTP (${requests} sequential, fetch client, simulator running at 20/s): median ${q(0.5)} ms, p99 ${q(0.99)} ms`,
);
process.kill(-child.pid!, 'SIGTERM');
