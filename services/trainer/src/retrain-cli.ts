/**
 * The continual-learning loop from the command line (docs/continual-learning.md):
 *
 *   npm run retrain -w services/trainer -- [--model fraud_detector] \
 *     (--predictions FILE | --predictions-topic TOPIC) (--labels FILE | --labels-topic TOPIC) [--cutoff now] \
 *     [--algorithm gbt|logistic_regression] [--trees 300] [--seed 1] [--min-auc-gain 0] [--no-shadow] \
 *     [--by WHO] [--reason WHY] [--out DIR [--force]]
 *
 * Builds the training set from the champion's served predictions joined with labels as of
 * the cut-off, trains the next version, compares it with the champion on the same
 * validation rows, registers it (MODEL_REGISTRY_DIR) and starts it as a shadow (the routing
 * in REDIS_URL). Exit codes: 0 done, 1 refused (set too small or one-class, challenger worse
 * than allowed) or failed, 2 wrong options (every option is checked before Redis or any input
 * is opened: a blank number, --by or --reason, more than MAX_TREES trees).
 */
import { hostname, userInfo } from 'node:os';
import { ModelRegistry, RedisRoutingStore } from '@tributary/inference';
import { auditTextProblem, fraud, planModelFeatures, parseCommandOptions, REASON_MAX_LENGTH } from '@tributary/shared';
import {
  checkTreeFlags,
  cliConfig,
  eventLogOpener,
  exactlyOne,
  fileOrTopic,
  numberFlag,
  parseDurationFlag,
  parseTimeFlag,
  runCli,
  UsageError,
  userPath,
} from './cli-support.js';
import { retrain, RetrainRefused } from './retrain.js';
import { ALGORITHMS, TREE_DEFAULTS, type AlgorithmFlag } from './train-model.js';
import type { LabelPolicy } from './training-set.js';

async function main(): Promise<void> {
  const { values } = parseCommandOptions({
    options: {
      model: { type: 'string' },
      predictions: { type: 'string' },
      'predictions-topic': { type: 'string' },
      labels: { type: 'string' },
      'labels-topic': { type: 'string' },
      cutoff: { type: 'string', default: 'now' },
      unlabelled: { type: 'string', default: 'drop' },
      maturity: { type: 'string' },
      'validation-fraction': { type: 'string', default: '0.2' },
      algorithm: { type: 'string', default: 'gbt' },
      // For gbt only.
      trees: { type: 'string' },
      seed: { type: 'string', default: '1' },
      'min-auc-gain': { type: 'string', default: '0' },
      shadow: { type: 'boolean' },
      'no-shadow': { type: 'boolean' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      by: { type: 'string' },
      reason: { type: 'string' },
    },
  });
  if (!Object.hasOwn(ALGORITHMS, values.algorithm!))
    throw new UsageError(`--algorithm must be one of ${Object.keys(ALGORITHMS).join(', ')}`);
  const unlabelled = values.unlabelled;
  if (unlabelled !== 'drop' && unlabelled !== 'negative') throw new UsageError('--unlabelled must be drop or negative');
  if (unlabelled === 'negative' && values.maturity === undefined)
    throw new UsageError('--unlabelled negative needs --maturity DURATION: how long a label may take to arrive');
  if (values.force && values.out === undefined) throw new UsageError('--force replaces the version at --out: give --out DIR');
  if (values.shadow && values['no-shadow']) throw new UsageError('give --shadow or --no-shadow, not both');
  const minAucGain = numberFlag(values['min-auc-gain']!, '--min-auc-gain');
  if (!Number.isFinite(minAucGain) || Math.abs(minAucGain) >= 1) throw new UsageError('--min-auc-gain must be a number in (-1, 1)');
  const fraction = numberFlag(values['validation-fraction']!, '--validation-fraction');
  if (!(fraction > 0 && fraction < 1)) throw new UsageError('--validation-fraction must be a number between 0 and 1 (exclusive)');
  if (values.algorithm !== 'gbt' && values.trees !== undefined) throw new UsageError('--trees is only for --algorithm gbt');
  const trees = { ...TREE_DEFAULTS, trees: numberFlag(values.trees ?? String(TREE_DEFAULTS.trees), '--trees') };
  checkTreeFlags(trees);
  const seed = numberFlag(values.seed!, '--seed');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
  const policy: LabelPolicy = {
    cutoff: parseTimeFlag(values.cutoff!, '--cutoff'),
    unlabelled,
    maturityMs: values.maturity === undefined ? 0 : parseDurationFlag(values.maturity, '--maturity', true),
  };
  // Kept in the registry's audit log: said, or not given (the default), never blank.
  const by = values.by === undefined ? `${userInfo().username}@${hostname()}` : values.by.trim();
  if (!by) throw new UsageError('--by names who retrains (kept in the audit log): it cannot be blank');
  const reason = values.reason?.trim();
  if (reason === '') throw new UsageError('--reason says why (kept in the audit log): it cannot be blank; leave it out for the default');
  for (const [flag, text, max] of [['--reason', reason, REASON_MAX_LENGTH] as const, ['--by', by, 200] as const]) {
    const problem = text === undefined ? null : auditTextProblem(text, max);
    if (problem !== null) throw new UsageError(`${flag} ${problem} (kept in the audit log)`);
  }
  exactlyOne(values.predictions, values['predictions-topic'], ['--predictions', '--predictions-topic']);
  exactlyOne(values.labels, values['labels-topic'], ['--labels', '--labels-topic']);

  const config = cliConfig();
  if (!config.REDIS_URL)
    throw new UsageError(
      'REDIS_URL is not set: the champion and the shadows are read from and written to the routing in Redis (without it, the routing lives inside the serving process)',
    );
  const catalog = fraud.fraudExample().catalog;
  const routes = new RedisRoutingStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX);
  // As the registry CLI: right after Redis lost the routing, wait for the serving replicas to write it back
  // rather than take the highest registered version for the champion.
  const awaitRestore = { ms: 2 * config.ROUTING_POLL_INTERVAL + 1_000, notify: (message: string) => console.error(message) };
  const registry = new ModelRegistry(
    config.MODEL_REGISTRY_DIR,
    routes,
    (manifest) => {
      planModelFeatures(manifest, catalog);
    },
    { awaitRestore, warn: (message) => console.error(message) },
  );
  const kafka = eventLogOpener(config);
  try {
    await routes.reachable();
    const predictions = await fileOrTopic(
      values.predictions,
      values['predictions-topic'],
      ['--predictions', '--predictions-topic'],
      kafka.open,
    );
    const labels = await fileOrTopic(values.labels, values['labels-topic'], ['--labels', '--labels-topic'], kafka.open);
    const result = await retrain({
      model: values.model ?? config.MODEL_NAME,
      registry,
      predictions,
      labels,
      policy,
      split: { validationFraction: fraction },
      algorithm: values.algorithm as AlgorithmFlag,
      trees,
      seed,
      minAucGain,
      shadow: !values['no-shadow'],
      out: values.out === undefined ? undefined : userPath(values.out),
      replaceOut: values.force,
      by,
      reason,
      catalog,
      report: (line) => console.log(line),
    });
    console.log(
      `retrain: ${result.routing.shadows?.includes(result.version) ? `v${result.version} is in shadow` : `v${result.version} registered`}; ` +
        `promote it with: npm run models -- promote ${result.version} --reason "..."`,
    );
  } catch (error) {
    if (error instanceof RetrainRefused) {
      process.stderr.write(`retrain: refused (${error.reason}): ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  } finally {
    await kafka.close();
    await routes.close();
  }
}

runCli('retrain', main);
