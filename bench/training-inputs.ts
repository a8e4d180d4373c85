/**
 * Inputs for the trainer's tools at scale, seeded: a simulated world's transactions (events
 * file, slightly out of order), one label per transaction (chargeback delays from minutes to
 * days, a few labels dated before their transaction), and a prediction log of the champion
 * for every transaction, a few predictions logged twice:
 *   npx tsx bench/training-inputs.ts --rows 300000 --dir .tmp/inputs
 * Writes transactions.ndjson, labels.ndjson and predictions.ndjson to --dir and prints a
 * cut-off that leaves some labels after it. Used to measure the memory of
 * `training-set` (docs/training-data.md).
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { createRandom, fraud } from '../shared/src/index.js';
import { createTransactionGenerator, type SimulatedTransaction } from '../services/simulator/src/index.js';
import { servedPrediction } from '../test/support/served-prediction.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '300000' },
    dir: { type: 'string', default: '.tmp/inputs' },
    seed: { type: 'string', default: '1' },
  },
});
const rows = Number(args.rows);
const seed = Number(args.seed);
const T0 = Date.UTC(2026, 0, 1);
const random = createRandom(seed + 10);
const generator = createTransactionGenerator({ seed, users: 2000, fraudRate: 0.03 });
mkdirSync(args.dir!, { recursive: true });

async function writeLines(name: string, lines: Iterable<string>): Promise<void> {
  const out = createWriteStream(join(args.dir!, name));
  for (const line of lines) if (!out.write(`${line}\n`)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}

// 20 transactions a second of event time; one in ten logged up to a minute after the next ones.
const transactions: { t: SimulatedTransaction['transaction']; fraud: boolean }[] = [];
let now = T0;
for (let i = 0; i < rows; i++) {
  now += Math.max(1, Math.round(-Math.log(1 - random.next()) * 50));
  const { transaction, fraud: isFraud } = generator.next(now);
  transactions.push({ t: transaction, fraud: isFraud });
}
const logged = transactions.map((x, i) => ({ x, at: x.t.ts + (random.next() < 0.1 ? random.int(60_000) : 0), i }));
logged.sort((a, b) => a.at - b.at || a.i - b.i);
await writeLines(
  'transactions.ndjson',
  (function* () {
    for (const { x } of logged) yield JSON.stringify(x.t);
  })(),
);

// A label per transaction: a few dated up to an hour before it, the others minutes to days after it.
const labels = transactions.map(({ t, fraud: isFraud }) => ({
  request_id: t.event_id,
  label: isFraud ? 1 : 0,
  ts: random.next() < 0.02 ? t.ts - random.int(3_600_000) : t.ts + Math.round(Math.exp(8 + random.next() * 12)),
}));
labels.sort((a, b) => a.ts - b.ts);
await writeLines(
  'labels.ndjson',
  (function* () {
    for (const label of labels) yield JSON.stringify(label);
  })(),
);

await writeLines(
  'predictions.ndjson',
  (function* () {
    for (const [i, { t }] of transactions.entries()) {
      const features = Object.fromEntries(fraud.FRAUD_MODEL_FEATURES.map((f, k) => [f, k === 8 ? t.amount : (i * 7 + k) % 5]));
      const record = servedPrediction(t, `p${i}`, features, 0.1);
      yield JSON.stringify(record);
      if (i % 100 === 0) yield JSON.stringify({ ...record, prediction_id: `p${i}-again`, predicted_at: t.ts + 1_000 });
    }
  })(),
);
const last = transactions.at(-1)!.t.ts;
console.log(`wrote ${rows} transactions, labels and predictions to ${args.dir}; cut-off ${last + 24 * 3_600_000}`);
