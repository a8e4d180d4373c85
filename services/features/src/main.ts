/** Runs the feature pipeline on its own: `npm start -w services/features`. */
import {
  createEventLog,
  createLogger,
  createOnlineStore,
  createRegistry,
  describeBackends,
  exitOnStartupError,
  fraud,
  loadConfig,
  startOpsServer,
} from '@tributary/shared';
import { startLabelJoin } from './label-join.js';
import { startFeaturePipeline } from './pipeline.js';

const logger = createLogger('features');
try {
  const config = loadConfig(process.env, { PORT: '3001' });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'features');
  const store = createOnlineStore(config);
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const pipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: example.sources,
    groups: example.groups,
    deadLetterTopic: config.TOPIC_DEAD_LETTER,
    allowedLatenessMs: config.ALLOWED_LATENESS,
    groupId: `${config.CONSUMER_GROUP_PREFIX}-features`,
    flushIntervalMs: config.FLUSH_INTERVAL,
    registry,
    logger,
  });
  const labelJoin = await startLabelJoin({
    eventLog,
    store,
    topics: {
      transactions: config.TOPIC_TRANSACTIONS,
      labels: config.TOPIC_LABELS,
      labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS,
    },
    groupId: `${config.CONSUMER_GROUP_PREFIX}-label-join`,
    windowMs: config.LABEL_JOIN_WINDOW,
    registry,
    logger: logger,
  });
  const ops = await startOpsServer({
    registry,
    host: config.HOST,
    port: config.PORT,
    ready: async () => {
      await store.ping();
    },
  });
  logger.info(`feature pipeline running; ${describeBackends(config)}; metrics on ${ops.url}/metrics`);
  const shutdown = async () => {
    await Promise.all([pipeline.stop(), labelJoin.stop()]);
    await ops.close();
    await Promise.all([eventLog.close(), store.close()]);
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('features', error);
}
