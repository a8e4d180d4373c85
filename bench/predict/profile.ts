/**
 * Where the CPU time of a `--cpu-prof` profile goes, by part of the request path: self time
 * of every sampled function, grouped by the package or project module it belongs to.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const PARTS: [RegExp, string][] = [
  [/onnxruntime/, 'model (onnxruntime)'],
  [/ioredis|redis-parser|denque|cluster-key-slot|redis-errors/, 'online store (ioredis)'],
  [/kafkajs/, 'prediction log (kafkajs)'],
  [/koffi|librdkafka/, 'prediction log (librdkafka calls)'],
  [/@opentelemetry/, 'tracing (OpenTelemetry)'],
  [/piscina/, 'worker pool (piscina; a worker waiting for work shows here)'],
  [/fast-json-stringify/, 'response serialisation'],
  [/secure-json-parse/, 'body parsing'],
  [/ajv|fast-uri|json-schema/, 'validation (ajv)'],
  [/prom-client|tdigest|bintrees/, 'metrics (prom-client)'],
  [/pino|sonic-boom/, 'logging'],
  [
    /fastify|find-my-way|avvio|light-my-request|fast-querystring|toad-cache|abstract-logging|rfdc|process-warning/,
    'fastify (routing, hooks, reply)',
  ],
  [/\/services\/inference\//, 'inference service code'],
  [/\/shared\/src\//, 'shared code (feature vector, records)'],
  [/^node:|^internal\//, 'node runtime (http, net, streams, timers)'],
];

function partOf(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (functionName === '(idle)' || functionName === '(program)') return '(idle)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  for (const [pattern, part] of PARTS) if (pattern.test(url)) return part;
  if (url === '') return functionName.startsWith('JSON') ? 'body parsing' : 'native / generated code';
  return 'other';
}

export interface ProfilePart {
  part: string;
  share: number;
  microsPerRequest: number;
}

/** Parts by self time, with their share of the busy time and microseconds per request. */
export function summariseProfile(file: string, requests: number): { busyMs: number; parts: ProfilePart[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const part = partOf(byId.get(id)!);
    totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  totals.delete('(idle)');
  const busy = [...totals.values()].reduce((a, b) => a + b, 0);
  const parts = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([part, micros]) => ({
      part,
      share: Number((micros / busy).toFixed(3)),
      microsPerRequest: Number((micros / requests).toFixed(1)),
    }));
  return { busyMs: Math.round(busy / 1000), parts };
}
