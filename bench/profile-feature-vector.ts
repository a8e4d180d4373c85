/**
 * What assembling a model's input vector costs, without Redis or HTTP: the example model's
 * feature plan over states written by the pipeline's own processor (an in-memory store),
 * each vector as a prediction assembles it (`assembleVector`: the states read and merged,
 * on-demand features, defaults). Prints the CPU time per vector, median of the rounds:
 *   tsx bench/profile-feature-vector.ts [--users 2000] [--vectors 40000] [--rounds 8]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createFeatureProcessor } from '../services/features/src/feature-processor.js';
import {
  assembleVector,
  createRandom,
  entityKeys,
  fraud,
  MemoryOnlineStore,
  planModelFeatures,
  type StoredFields,
} from '../shared/src/index.js';
import { asLogRecords, benchTransactions } from './transactions.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '2000' },
    vectors: { type: 'string', default: '40000' },
    rounds: { type: 'string', default: '8' },
  },
});
const USERS = Number(args.users);
const VECTORS = Number(args.vectors);

// Three transactions per card holder over the last hour, through the pipeline's processor.
const store = new MemoryOnlineStore();
const example = fraud.fraudExample({ transactions: 'transactions' });
const processor = createFeatureProcessor({ store, source: example.sources[0]!, groups: example.groups, allowedLatenessMs: 5 * 60_000 });
processor.open('transactions', 0, -Infinity);
const now = Date.now();
const events = USERS * 3;
const outgoing = benchTransactions(
  createRandom(5),
  events,
  USERS,
  (i) => `e${i}`,
  (i) => now - 3_600_000 + Math.floor((i / events) * 3_600_000),
);
await processor.process({ topic: 'transactions', partition: 0, records: asLogRecords('transactions', outgoing, now) });
await processor.flush();

const manifest = JSON.parse(readFileSync(new URL('../models/fraud_detector/1/manifest.json', import.meta.url), 'utf8'));
const plan = planModelFeatures(manifest, example.catalog);
const requests = Array.from({ length: 500 }, (_, i) => ({
  entities: { user_id: `u${(i * 7) % USERS}`, merchant_id: `m${i % 200}` },
  features: { amount: 125.5, country: 'US', channel: 'web' },
}));
const states: (StoredFields | null)[][] = [];
for (const request of requests) states.push(await store.read(entityKeys(plan, request.entities)));

const perVector: number[] = [];
let defaulted = 0;
for (let round = 0; round < Number(args.rounds); round++) {
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < VECTORS; i++) {
    const request = requests[i % requests.length]!;
    defaulted += assembleVector(plan, states[i % states.length]!, request.features, now, false).defaulted.length;
  }
  const cpu = process.cpuUsage(cpu0);
  // The first two rounds warm the JIT up.
  if (round >= 2) perVector.push((cpu.user + cpu.system) / VECTORS);
}
perVector.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    features: plan.names.length,
    groups: plan.groups.length,
    vectors_per_round: VECTORS,
    cpu_us_per_vector_median: Number(perVector[Math.floor(perVector.length / 2)]!.toFixed(2)),
    cpu_us_per_vector_range: [Number(perVector[0]!.toFixed(2)), Number(perVector.at(-1)!.toFixed(2))],
    defaulted_per_vector: Number((defaulted / (VECTORS * Number(args.rounds))).toFixed(2)),
  }),
);
