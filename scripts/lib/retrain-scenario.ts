/**
 * The continual-learning loop end to end (docs/continual-learning.md), as a function: the
 * script `npm run scenario:retrain` prints it, and test/integration/retrain-scenario.int.test.ts
 * holds it to its figures on the real broker and Redis.
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
 * variant, the predictions made during the phase); the monitor's 1h-window ROC AUC gauge
 * (tributary_model_quality, per version and variant) is read at the end of each phase.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRoutingStore, ModelRegistry, startInference } from '@tributary/inference';
import { monitorSettings, startMonitor } from '@tributary/monitor';
import { startFeatureService } from '@tributary/features';
import {
  createEventLog,
  createLogger,
  createOnlineStore,
  connectRedis,
  createRegistry,
  fraud,
  loadConfig,
  planModelFeatures,
  validationMetrics,
  type Registry,
} from '@tributary/shared';
import { startSimulator, type SimulatorStats } from '@tributary/simulator';
import { readTopic } from '../../services/trainer/src/log-input.js';
import { retrain, RetrainRefused, type RetrainResult } from '../../services/trainer/src/retrain.js';

export interface ScenarioOptions {
  /** Transactions per second. */
  rate: number;
  /** Length of a phase (the drift phase runs twice as long). */
  phaseMs: number;
  algorithm: 'gbt' | 'logistic_regression';
  /** The environment the system is configured from (process.env by default). */
  env?: Record<string, string | undefined>;
  /** Where each step's figures are told, as they come. */
  say?: (line?: string) => void;
}

export interface Figures {
  labelled: number;
  positives: number;
  auc: number;
  log_loss: number;
  ece: number;
  recall: number;
  precision: number;
}

export interface PhaseFigures {
  step: string;
  /** `v<version> <variant>`. */
  model: string;
  version: string;
  variant: string;
  /** Null when the phase's predictions have too few labels (or one class only). */
  figures: Figures | null;
}

/** One series of the monitor's ROC AUC gauge over its 1h window. */
export interface MonitorReading {
  version: string;
  variant: string;
  auc: number;
}

export interface ScenarioReport {
  phases: PhaseFigures[];
  retrain: RetrainResult;
  /** The monitor's readings at the end of each phase, by phase number (1-4). */
  monitor: Record<1 | 2 | 3 | 4, MonitorReading[]>;
  /** The routing once the new version was promoted. */
  promoted: { champion: string; previous: string[]; shadows: string[] };
  simulator: SimulatorStats;
  seconds: number;
}

const MODEL = 'fraud_detector';
const LABEL_DELAY_MS = 2000;
/** After the drift, fraud is more frequent as well: more examples of the new pattern to learn from. */
export const POST_DRIFT_FRAUD_RATE = 0.1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export const showFigures = (f: Figures | null): string =>
  f === null
    ? 'not enough labels'
    : `AUC ${f.auc.toFixed(3)}, log loss ${f.log_loss.toFixed(3)}, ECE ${f.ece.toFixed(3)}, recall@0.5 ${f.recall.toFixed(2)}, precision@0.5 ${f.precision.toFixed(2)} (${f.labelled} labelled, ${f.positives} fraud)`;

const showReadings = (readings: MonitorReading[]): string =>
  readings.length === 0 ? 'no labelled predictions yet' : readings.map((r) => `v${r.version} ${r.variant} ${r.auc.toFixed(3)}`).join(', ');

/** The monitor's ROC AUC over its 1h window (by label arrival), per version and variant. */
async function monitorAuc(registry: Registry): Promise<MonitorReading[]> {
  const gauge = registry.getSingleMetric('tributary_model_quality');
  if (!gauge) return [];
  return (await gauge.get()).values
    .filter((v) => v.labels.window === '1h' && v.labels.metric === 'roc_auc')
    .map((v) => ({ version: String(v.labels.version), variant: String(v.labels.variant), auc: v.value }));
}

export async function runRetrainScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  const { rate, phaseMs, algorithm } = options;
  const say = options.say ?? (() => undefined);
  const base = options.env ?? process.env;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const run = `scenario-${Date.now().toString(36)}`;

  // A registry of its own (a copy of the shipped models): the versions the loop registers stay out of the repository.
  const registryDir = await mkdtemp(join(tmpdir(), 'tributary-scenario-models-'));
  // The versions, not a routing recorded by an earlier run (see ModelRegistry.record).
  await cp(join(root, 'models'), registryDir, { recursive: true, filter: (source) => basename(source) !== 'routing.json' });
  const env: Record<string, string | undefined> = {
    ...base,
    PORT: '0',
    LOG_LEVEL: base.LOG_LEVEL ?? 'warn',
    MODEL_REGISTRY_DIR: registryDir,
    MODEL_NAME: MODEL,
    ROUTING_POLL_INTERVAL: '250ms',
    // Everything runs in this one process, training included, which holds the event loop for
    // a while: no load shedding, or the simulator's requests meanwhile would be refused.
    SHED_EVENT_LOOP_DELAY_MS: '0',
    SIMULATOR_DRIFT: `after=${Math.round(phaseMs / 1000)}s,fraud=mimic,fraud_rate=${POST_DRIFT_FRAUD_RATE}`,
    CONSUMER_GROUP_PREFIX: run,
    REDIS_KEY_PREFIX: `tributary-${run}:`,
  };
  // On a real broker, topics of this run only (the prediction log must hold this run's predictions alone).
  if (base.KAFKA_BROKERS)
    for (const topic of ['TRANSACTIONS', 'LABELS', 'PREDICTIONS', 'LABELLED_TRANSACTIONS', 'DEAD_LETTER'])
      env[`TOPIC_${topic}`] = `${run}-${topic.toLowerCase().replace('_', '-')}`;
  const config = loadConfig(env);
  const logger = createLogger('scenario', config.LOG_LEVEL);

  const metrics = createRegistry({ defaultMetrics: false });
  const eventLog = createEventLog(config, 'scenario');
  const store = createOnlineStore(config);
  const routes = createRoutingStore(config);
  const catalog = fraud.fraudExample().catalog;
  const registry = new ModelRegistry(config.MODEL_REGISTRY_DIR, routes, (manifest) => {
    planModelFeatures(manifest, catalog);
  });
  const cleanups: (() => Promise<unknown>)[] = [];
  const startedAt = Date.now();
  try {
    // The run's own topics, 4 partitions each: the count librdkafka's mock cluster gives the topics
    // it creates on first use, as it cannot create them as asked (ensureTopics then returns those
    // created with another count, which `npm start` warns of; the count changes nothing here).
    await eventLog.ensureTopics(
      [
        config.TOPIC_TRANSACTIONS,
        config.TOPIC_LABELS,
        config.TOPIC_PREDICTIONS,
        config.TOPIC_LABELLED_TRANSACTIONS,
        config.TOPIC_DEAD_LETTER,
      ].map((name) => ({ name, partitions: 4 })),
    );
    const inference = await startInference(config, {
      eventLog,
      store,
      registry: metrics,
      routes,
      logger: logger.child({ component: 'inference' }),
    });
    cleanups.push(() => inference.close());
    const features = await startFeatureService(config, {
      eventLog,
      store,
      registry: metrics,
      logger: logger.child({ component: 'features' }),
    });
    cleanups.push(() => features.stop());
    const monitor = await startMonitor({
      eventLog,
      topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
      groupId: `${config.CONSUMER_GROUP_PREFIX}-monitor`,
      registry: metrics,
      ...monitorSettings(config, undefined, { logger: logger.child({ component: 'monitor' }), embedded: true }),
      logger: logger.child({ component: 'monitor' }),
    });
    cleanups.push(() => monitor.stop());

    // Every prediction and label of the run, as the log holds them, for the per-phase figures.
    const served = new Map<string, { version: string; variant: string; score: number; at: number }[]>();
    const labels = new Map<string, 0 | 1>();
    const collector = await eventLog.subscribe({
      groupId: `${run}-figures`,
      topics: [config.TOPIC_PREDICTIONS, config.TOPIC_LABELS],
      fromBeginning: true,
      autoCommit: false,
      eachBatch: async (batch) => {
        for (const record of batch.records) {
          const value = JSON.parse(record.value!.toString()) as Record<string, unknown>;
          if (batch.topic === config.TOPIC_LABELS) labels.set(String(value.request_id), value.label === 1 ? 1 : 0);
          else {
            const model = value.model as { version: string };
            const list = served.get(String(value.request_id)) ?? [];
            list.push({
              version: model.version,
              variant: String(value.variant),
              score: Number(value.score),
              at: Number(value.predicted_at),
            });
            served.set(String(value.request_id), list);
          }
        }
      },
    });
    cleanups.push(() => collector.stop());

    const simulator = startSimulator({
      eventLog,
      topics: { transactions: config.TOPIC_TRANSACTIONS, labels: config.TOPIC_LABELS },
      inferenceUrl: inference.url,
      ratePerSecond: rate,
      fraudRate: config.SIMULATOR_FRAUD_RATE,
      meanLabelDelayMs: LABEL_DELAY_MS,
      users: config.SIMULATOR_USERS,
      seed: config.SIMULATOR_SEED,
      maxInFlight: config.SIMULATOR_MAX_IN_FLIGHT,
      drift: config.SIMULATOR_DRIFT,
      logger: logger.child({ component: 'simulator' }),
    });
    cleanups.push(() => simulator.stop());
    // The phases count from the simulator's start (its drift schedule does too).
    const start = Date.now();

    /** Quality of one version/variant's predictions made in [from, to), labels known now. */
    const figures = (from: number, to: number, version: string, variant: string): Figures | null => {
      const scores: number[] = [];
      const truth: number[] = [];
      for (const [id, list] of served) {
        const label = labels.get(id);
        if (label === undefined) continue;
        for (const p of list) {
          if (p.version === version && p.variant === variant && p.at >= from && p.at < to) {
            scores.push(p.score);
            truth.push(label);
          }
        }
      }
      if (truth.length === 0 || new Set(truth).size < 2) return null;
      const m = validationMetrics(scores, truth);
      let tp = 0;
      let fp = 0;
      scores.forEach((s, i) => {
        if (s >= 0.5 && truth[i] === 1) tp++;
        if (s >= 0.5 && truth[i] === 0) fp++;
      });
      return {
        labelled: m.rows,
        positives: m.positives,
        auc: m.auc,
        log_loss: m.log_loss,
        ece: m.ece,
        recall: tp / m.positives,
        precision: tp + fp === 0 ? 0 : tp / (tp + fp),
      };
    };
    const clock = () => `[${((Date.now() - start) / 1000).toFixed(0).padStart(3)} s]`;
    say(
      `${clock()} system up (${config.KAFKA_BROKERS ? `Kafka ${config.KAFKA_BROKERS}` : 'in-memory event log'}, ${config.REDIS_URL ? `Redis ${config.REDIS_URL}` : 'in-memory store and routing'}); simulator at ${rate} transactions/s, ${config.SIMULATOR_USERS} card holders, fraud rate ${config.SIMULATOR_FRAUD_RATE}, labels after ${LABEL_DELAY_MS / 1000} s on average; concept drift (fraud=mimic, fraud rate ${POST_DRIFT_FRAUD_RATE}) after ${phaseMs / 1000} s`,
    );
    const readings: Partial<Record<1 | 2 | 3 | 4, MonitorReading[]>> = {};
    /** Reads the monitor's gauge, waiting (up to a minute: it may lag behind the log) for the series expected. */
    const readMonitor = async (phase: 1 | 2 | 3 | 4, what: string, expected: string[]) => {
      // Up to a minute for the monitor's series: on a slow, busy machine its joins ran 30-50 s behind (CI, 2026-12-01).
      const deadline = Date.now() + 60_000;
      let current = await monitorAuc(metrics);
      const missing = () => expected.filter((series) => !current.some((r) => `v${r.version} ${r.variant}` === series));
      while (missing().length > 0 && Date.now() < deadline) {
        await sleep(500);
        current = await monitorAuc(metrics);
      }
      readings[phase] = current;
      say(`  monitor, ROC AUC over its 1h window${what}: ${showReadings(current)}`);
    };

    // Phase 1: no drift.
    const p1 = { from: start, to: start + phaseMs };
    await sleep(p1.to - Date.now());
    say(`\n${clock()} phase 1, no drift: ${simulator.stats.transactions} transactions, ${simulator.stats.labels} labels so far`);
    say(`  champion v1 (predictions of the phase, labels so far): ${showFigures(figures(p1.from, p1.to, '1', 'champion'))}`);
    await readMonitor(1, '', ['v1 champion']);

    // Phase 2: concept drift from the start of this phase on.
    const p2 = { from: p1.to, to: p1.to + phaseMs * 2 };
    await sleep(p2.to - Date.now());
    say(
      `\n${clock()} phase 2, concept drift (fraud=mimic, fraud rate ${POST_DRIFT_FRAUD_RATE}): ${simulator.stats.transactions} transactions, ${simulator.stats.labels} labels so far`,
    );
    say(`  champion v1 (predictions of the phase): ${showFigures(figures(p2.from, p2.to, '1', 'champion'))}`);
    await readMonitor(2, ' (phases 1 and 2 together)', ['v1 champion']);

    // Retrain -> register -> shadow, from the prediction log and the labels so far.
    say(
      `\n${clock()} retrain: training set from the prediction log (${config.TOPIC_PREDICTIONS}) and labels (${config.TOPIC_LABELS}), cut-off now`,
    );
    const [predictionLog, labelLog] = await Promise.all([
      readTopic(eventLog, config.TOPIC_PREDICTIONS),
      readTopic(eventLog, config.TOPIC_LABELS),
    ]);
    const result = await retrain({
      model: MODEL,
      registry,
      predictions: predictionLog,
      labels: labelLog,
      // Predictions younger than five mean label delays are left out, labelled or not.
      policy: { cutoff: Date.now(), unlabelled: 'drop', maturityMs: 5 * LABEL_DELAY_MS },
      algorithm,
      by: 'retrain-scenario',
      report: (line) => say(`  ${line}`),
    }).catch((error: unknown) => {
      if (error instanceof RetrainRefused) say(`  refused (${error.reason}): ${error.message}`);
      throw error;
    });
    const v2 = result.version;

    // Phase 3: the new version in shadow, scored on the same requests as the champion.
    const p3 = { from: Date.now() + config.ROUTING_POLL_INTERVAL * 2, to: 0 };
    p3.to = p3.from + phaseMs;
    await sleep(p3.to - Date.now() + 3 * LABEL_DELAY_MS);
    say(`\n${clock()} phase 3, v${v2} in shadow: same requests, both scored`);
    say(`  champion v1: ${showFigures(figures(p3.from, p3.to, '1', 'champion'))}`);
    say(`  shadow   v${v2}: ${showFigures(figures(p3.from, p3.to, v2, 'shadow'))}`);
    await readMonitor(3, '', ['v1 champion', `v${v2} shadow`]);

    // Promote, then the new champion on the traffic after the promotion.
    const promoted = await registry.promote(MODEL, v2, 'retrain-scenario', `retrained v${v2} beat v1 in shadow`);
    say(
      `\n${clock()} promoted v${v2}: routing champion ${promoted.champion}, earlier ${promoted.previous.join(', ')}, shadows ${promoted.shadows?.join(', ') || 'none'}`,
    );
    const p4 = { from: Date.now() + config.ROUTING_POLL_INTERVAL * 2, to: 0 };
    p4.to = p4.from + phaseMs;
    await sleep(p4.to - Date.now() + 3 * LABEL_DELAY_MS);
    say(`\n${clock()} phase 4, after the promotion (still drifted)`);
    say(`  champion v${v2}: ${showFigures(figures(p4.from, p4.to, v2, 'champion'))}`);
    await readMonitor(4, '', [`v${v2} champion`]);

    // Every figure again, with every label that has arrived by now.
    const phase = (step: string, [from, to]: [number, number], version: string, variant: string): PhaseFigures => ({
      step,
      model: `v${version} ${variant}`,
      version,
      variant,
      figures: figures(from, to, version, variant),
    });
    return {
      phases: [
        phase('1 no drift', [p1.from, p1.to], '1', 'champion'),
        phase('2 concept drift', [p2.from, p2.to], '1', 'champion'),
        phase('3 shadow', [p3.from, p3.to], '1', 'champion'),
        phase('3 shadow', [p3.from, p3.to], v2, 'shadow'),
        phase('4 promoted', [p4.from, p4.to], v2, 'champion'),
      ],
      retrain: result,
      monitor: readings as Record<1 | 2 | 3 | 4, MonitorReading[]>,
      promoted: { champion: promoted.champion, previous: promoted.previous, shadows: promoted.shadows ?? [] },
      simulator: { ...simulator.stats },
      seconds: (Date.now() - startedAt) / 1000,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await routes.close();
    await Promise.all([eventLog.close(), store.close()]);
    await rm(registryDir, { recursive: true, force: true });
    // This run's keys (routing, join store, features) leave with it.
    if (config.REDIS_URL && !config.REDIS_CLUSTER) {
      const redis = connectRedis({ url: config.REDIS_URL, cluster: false });
      const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
      await redis.quit();
    }
  }
}
