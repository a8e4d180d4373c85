/**
 * Where a process spent its time, from a V8 CPU profile (`node --cpu-prof`, or
 * `npm run bench:monitor -- --profile DIR`):
 *   tsx bench/cpu-profile-summary.ts FILE.cpuprofile [--top 25]
 * Prints the self time per part of the monitor's work, per source (file or package) and per
 * function, as shares of the busy time (idle excluded, and shown apart).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values: args, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
const file = positionals[0];
if (!file) throw new Error('usage: tsx bench/cpu-profile-summary.ts FILE.cpuprofile [--top 25]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const source = (url: string): string => {
  if (!url) return '(native/V8)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1]!;
  if (url.startsWith('node:')) return url;
  const ours = /\/((?:services|shared|bench)\/.*)$/.exec(url);
  return ours ? ours[1]! : url;
};
/** The part of the work a function belongs to, by its source (or name, for V8's natives). */
const PARTS: [string, RegExp][] = [
  ['kafkajs: fetch and decode', /^(kafkajs|long|shared\/src\/event-log\/.*)$/],
  ['record decode and validation (JSON.parse, TypeBox)', /^(shared\/src\/records\/.*|typebox|check_\d+|RegExp: .*)$/],
  [
    'join store client (ioredis, script arguments)',
    /^(ioredis|redis-parser|denque|cluster-key-slot|(.*\/)?services\/monitor\/src\/join-store\.ts)$/,
  ],
  ['socket writes (Redis, broker)', /^(writeUtf8String|writeBuffer|writev|node:net|node:internal\/stream_base_commons)$/],
  // (a baseline's sources are under bench/.baseline/)
  [
    'statistics and metrics (monitor, shared/monitoring, prom-client)',
    /^(.*\/)?(services\/monitor\/.*|shared\/src\/monitoring\/.*|prom-client)$/,
  ],
  ['garbage collector', /^\(garbage collector\)$/],
];
const byPart = new Map<string, number>();
const byFunction = new Map<string, number>();
const bySource = new Map<string, number>();
let idle = 0;
let busy = 0;
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
  if (functionName === '(idle)' || functionName === '(program)') {
    idle += us;
    continue;
  }
  busy += us;
  const name = `${functionName || '(anonymous)'} ${source(url)}${url ? `:${lineNumber + 1}` : ''}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  const src = functionName === '(garbage collector)' ? '(garbage collector)' : source(url);
  bySource.set(src, (bySource.get(src) ?? 0) + us);
  const part = PARTS.find(([, pattern]) => pattern.test(src) || (!url && pattern.test(functionName)))?.[0] ?? 'other';
  byPart.set(part, (byPart.get(part) ?? 0) + us);
}
const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
const top = Number(args.top);
console.log(`busy ${(busy / 1e6).toFixed(2)} s, idle/program ${(idle / 1e6).toFixed(2)} s`);
console.log('\nself time by part:');
for (const [name, us] of [...byPart].sort((a, b) => b[1] - a[1])) console.log(`${pct(us)}  ${name}`);
console.log('\nself time by source:');
for (const [name, us] of [...bySource].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${name}`);
console.log('\nself time by function:');
for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${name}`);
