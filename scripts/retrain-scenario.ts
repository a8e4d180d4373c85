/**
 * The continual-learning loop end to end (docs/continual-learning.md): `npm run scenario:retrain`.
 *
 * Starts the system in this process as `npm start` does (feature pipeline, inference service,
 * monitor, simulator; in memory, or on KAFKA_BROKERS / REDIS_URL when set), then:
 *   1. no drift: the shipped champion's quality;
 *   2. concept drift (fraud=mimic: fraud looks like the card holder's own purchases, and is more
 *      frequent: fraud_rate=0.1): quality drops;
 *   3. retrain (training set from the prediction log and the labels so far, cut-off now) ->
 *      register -> shadow: the new version is scored beside the champion on the same requests;
 *   4. promote: the new champion's quality on the traffic after the promotion.
 * Each phase's figures come from the prediction log joined with its labels (per version and
 * variant, the predictions made during the phase); the monitor's 1h-window gauge
 * (tributary_model_quality) is printed beside them. A table of every step ends the run.
 * The loop itself is scripts/lib/retrain-scenario.ts (also run by test/integration/retrain-scenario.int.test.ts).
 *
 * Options: --rate N (transactions/s, default 100), --phase SECONDS (default 25; the drift
 * phase runs 1.5 times as long), --algorithm gbt|logistic_regression (default gbt).
 */
import { parseArgs } from 'node:util';
import { runRetrainScenario, type Figures } from './lib/retrain-scenario.js';

/** A wrong option: said in one line with the usage, exit 2 (no stack trace). */
function usage(message: string): never {
  process.stderr.write(
    `retrain scenario: ${message}\nusage: npm run scenario:retrain -- [--rate 100] [--phase 25] [--algorithm gbt|logistic_regression]\n`,
  );
  process.exit(2);
}
let values: { rate: string; phase: string; algorithm: string };
try {
  values = parseArgs({
    options: {
      rate: { type: 'string', default: '100' },
      phase: { type: 'string', default: '25' },
      algorithm: { type: 'string', default: 'gbt' },
    },
  }).values as typeof values;
} catch (error) {
  usage((error as Error).message);
}
const rate = Number(values.rate);
const phaseMs = Number(values.phase) * 1000;
if (!(rate > 0 && rate <= 100_000) || !(phaseMs >= 5000 && phaseMs <= 3_600_000))
  usage('--rate must be a number from 1 to 100000 and --phase from 5 to 3600 (seconds)');
if (values.algorithm !== 'gbt' && values.algorithm !== 'logistic_regression')
  usage(`--algorithm must be gbt or logistic_regression, got ${values.algorithm}`);
const algorithm = values.algorithm;
const say = (line = '') => console.log(line);

const report = await runRetrainScenario({ rate, phaseMs, algorithm, say });
const c = report.retrain.comparison;
const cells = (f: Figures) =>
  `${String(f.labelled).padStart(8)} | ${String(f.positives).padStart(5)} | ${f.auc.toFixed(3)} | ${f.log_loss.toFixed(3).padStart(8)} | ${f.ece.toFixed(3)} | ${f.recall.toFixed(2).padStart(10)} | ${f.precision.toFixed(2).padStart(13)}`;
const offline = (step: string, model: string, m: typeof c.challenger) =>
  `| ${step.padEnd(29)} | ${model.padEnd(12)} | ${String(c.rows).padStart(8)} | ${String(m.positives).padStart(5)} | ${m.auc.toFixed(3)} | ${m.log_loss.toFixed(3).padStart(8)} | ${m.ece.toFixed(3)} | ${'-'.padStart(10)} | ${'-'.padStart(13)} |`;
say(`\nsummary (per phase: the predictions made in it, joined with their labels)`);
say(`| step                          | model        | labelled | fraud | AUC   | log loss | ECE   | recall@0.5 | precision@0.5 |`);
say(`| ----------------------------- | ------------ | -------- | ----- | ----- | -------- | ----- | ---------- | ------------- |`);
for (const [i, p] of report.phases.entries()) {
  if (i === 2) {
    say(offline(`retrain (offline, ${c.rows} rows)`, `v${report.retrain.version} vs v1`, c.challenger));
    say(offline('  (champion, same rows)', 'v1', c.champion));
  }
  say(
    p.figures === null
      ? `| ${p.step.padEnd(29)} | ${p.model.padEnd(12)} | not enough labels |`
      : `| ${p.step.padEnd(29)} | ${p.model.padEnd(12)} | ${cells(p.figures)} |`,
  );
}
const { set, training } = report.retrain;
say(
  `training set: ${set.rows} rows, ${set.positives} fraud (${set.train} train, ${set.validation} validation), built in ${set.seconds.toFixed(2)} s; trained (${training.algorithm}) in ${training.seconds.toFixed(1)} s`,
);
const s = report.simulator;
say(
  `simulator: ${s.transactions} transactions (${s.fraud} fraud), ${s.scored} scored, ${s.scoreErrors} scoring errors; run took ${report.seconds.toFixed(0)} s`,
);
