/** Runs the monitor on its own: `npm start -w services/monitor`. */
import {
  exitOnStartupError,
  createEventLog,
  createLogger,
  createRegistry,
  describeBackends,
  loadConfig,
  SERVICE_DEFAULTS,
  startOpsServer,
} from '@tributary/shared';
import { monitorDependencies, monitorSettings } from './connections.js';
import { startMonitor, type Monitor } from './monitor.js';

try {
  const config = loadConfig(process.env, SERVICE_DEFAULTS.monitor);
  const logger = createLogger('monitor', config.LOG_LEVEL);
  const registry = createRegistry();
  // Before anything listens: a configuration the monitor refuses (no REDIS_URL on Kafka) stops it here.
  const settings = monitorSettings(config, undefined, { logger });
  const eventLog = createEventLog(config, 'monitor');
  let monitor: Monitor | null = null;
  let stopping = false;
  // Served while the monitor joins its consumer group, which it may take seconds to do while it
  // already consumes a backlog: its metrics count from the first batch. Ready once started, whatever
  // Kafka does: the monitor waits through its outages and resumes from its commits.
  const ops = await startOpsServer({
    registry,
    host: config.HOST,
    port: config.PORT,
    started: () => monitor !== null,
    notReady: () => (stopping ? 'stopping' : monitor === null ? 'starting: joining the consumer group' : null),
    dependencies: monitorDependencies(eventLog, settings.joins, settings.rollouts),
  });
  logger.info(`monitor starting; metrics on ${ops.url}/metrics`);
  monitor = await startMonitor({
    eventLog,
    topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
    groupId: `${config.CONSUMER_GROUP_PREFIX}-monitor`,
    registry,
    logger,
    ...settings,
  });
  logger.info(`monitor running; ${describeBackends(config)}`);
  const shutdown = async () => {
    stopping = true;
    await monitor?.stop();
    await ops.close();
    await eventLog.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('monitor', error);
}
