/**
 * The whole system in one process: `npm start`. On the embedded default (no KAFKA_BROKERS,
 * no REDIS_URL) every part runs on in-memory implementations; setting either address
 * switches that part to the real system.
 */
import { startFeatureService } from '@tributary/features';
import { createRewardStore, createRoutingStore, startInference } from '@tributary/inference';
import { monitorSettings, startMonitor } from '@tributary/monitor';
import {
  createEventLog,
  createLogger,
  createOnlineStore,
  createRegistry,
  ConfigError,
  describeBackends,
  exitOnStartupError,
  loadConfig,
  startTracing,
  type Config,
  type Logger,
} from '@tributary/shared';
import { startSimulator } from '@tributary/simulator';
import { heldLog } from './held-log.js';
import { simulatedJoinWindows } from './join-windows.js';

const started = performance.now();
// The first lines a user reads are the plain-text ones below; the log lines before them wait.
const log = heldLog();
/** What has started, closed in the reverse order on shutdown. */
const running: (() => Promise<unknown>)[] = [];
let stopAsked = false;
let stopping: Promise<void> | null = null;
/** Closes what has started, newest first, then exits. */
const shutdown = (logger: Logger) =>
  (stopping ??= (async () => {
    logger.info('shutting down');
    for (const close of running.reverse()) await close();
    process.exit(0);
  })());
/** After each step of the start: a signal that came meanwhile stops what has started (and the start). */
const goOn = (logger: Logger): boolean => {
  if (stopAsked) void shutdown(logger);
  return !stopAsked;
};
try {
  const config = simulatedJoinWindows(loadConfig(), process.env);
  const logger = createLogger('tributary', config.LOG_LEVEL, log);
  if (config.SIMULATOR && config.API_KEYS && config.SIMULATOR_API_KEY === undefined) {
    throw new ConfigError(
      'invalid configuration:\n  API_KEYS is set, so the simulator needs a key for its predictions: set SIMULATOR_API_KEY to the secret of one of them, or SIMULATOR=false',
    );
  }
  // From the start: a signal while the parts start lets the started ones close (answered predictions logged,
  // consumer groups left), not the default action that kills the process.
  let ready = false;
  const onSignal = () => {
    stopAsked = true;
    if (ready) return void shutdown(logger);
    log.release();
    logger.info('stopping once the part starting now is up, then closing what has started (a second signal kills the process)');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await start(config, logger);
  ready = true;
  if (stopAsked) void shutdown(logger);
} catch (error) {
  log.release();
  exitOnStartupError('tributary', error);
}

async function start(config: Config, logger: Logger): Promise<void> {
  const tracing = await startTracing(config, { service: 'tributary', logger });
  running.push(() => tracing.stop());
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'standalone');
  const store = createOnlineStore(config);
  // One routing and one set of bandit rewards for the inference service and the monitor's rollout rules.
  const rollouts = { routes: createRoutingStore(config), rewards: createRewardStore(config) };
  running.push(() => Promise.all([eventLog.close(), store.close(), rollouts.routes.close(), rollouts.rewards.close()]));
  const topics = [config.TOPIC_TRANSACTIONS, config.TOPIC_LABELS, config.TOPIC_PREDICTIONS, config.TOPIC_LABELLED_TRANSACTIONS]
    .map((name) => ({ name, partitions: 4 }))
    .concat({ name: config.TOPIC_DEAD_LETTER, partitions: 1 });
  for (const { name, partitions } of await eventLog.ensureTopics(topics)) {
    const asked = topics.find((t) => t.name === name)!.partitions;
    logger.warn(
      `topic ${name} was created on first use by the Kafka cluster with ${partitions} partitions, not the ${asked} asked (create it beforehand to choose)`,
    );
  }
  if (!goOn(logger)) return;
  const inference = await startInference(config, {
    eventLog,
    store,
    registry,
    logger: logger.child({ component: 'inference' }),
    ...rollouts,
  });
  running.push(() => inference.close());
  if (!goOn(logger)) return;
  // The first lines a user reads: plain text, then structured logs.
  console.log(
    `Tributary is listening on ${inference.url}  (POST ${inference.url}/v1/predict, API docs ${inference.url}/docs, metrics ${inference.url}/metrics)`,
  );
  console.log(describeBackends(config));
  log.release();
  const features = await startFeatureService(config, { eventLog, store, registry, logger: logger.child({ component: 'features' }) });
  running.push(() => features.stop());
  if (!goOn(logger)) return;
  const monitor = await startMonitor({
    eventLog,
    topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
    groupId: `${config.CONSUMER_GROUP_PREFIX}-monitor`,
    registry,
    ...monitorSettings(config, rollouts, { logger: logger.child({ component: 'monitor' }), embedded: true }),
    logger: logger.child({ component: 'monitor' }),
  });
  running.push(() => monitor.stop());
  if (!goOn(logger)) return;
  const simulator = config.SIMULATOR
    ? startSimulator({
        eventLog,
        topics: { transactions: config.TOPIC_TRANSACTIONS, labels: config.TOPIC_LABELS },
        inferenceUrl: inference.url,
        apiKey: config.SIMULATOR_API_KEY,
        ratePerSecond: config.SIMULATOR_RATE,
        fraudRate: config.SIMULATOR_FRAUD_RATE,
        meanLabelDelayMs: config.SIMULATOR_LABEL_DELAY,
        users: config.SIMULATOR_USERS,
        seed: config.SIMULATOR_SEED,
        maxInFlight: config.SIMULATOR_MAX_IN_FLIGHT,
        drift: config.SIMULATOR_DRIFT,
        logger: logger.child({ component: 'simulator' }),
      })
    : null;
  if (simulator) running.push(() => simulator.stop());
  logger.info(
    `ready in ${Math.round(performance.now() - started)} ms: feature pipeline, monitor${simulator ? `, simulator (${config.SIMULATOR_RATE} transactions/s, run ${simulator.run})` : ''}; metrics on ${inference.url}/metrics`,
  );
  if (simulator && !config.REDIS_URL) {
    logger.info(
      `label join window ${config.LABEL_JOIN_WINDOW / 60_000} min, monitor join window ${config.MONITOR_JOIN_WINDOW / 60_000} min: the simulator's labels come within minutes, and the embedded stores hold what they join for that long (LABEL_JOIN_WINDOW, MONITOR_JOIN_WINDOW to change)`,
    );
  }
}
