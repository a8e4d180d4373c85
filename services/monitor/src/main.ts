/** Runs the monitor on its own: `npm start -w services/monitor`. */
import {
  exitOnStartupError,
  createEventLog,
  createLogger,
  createRegistry,
  describeBackends,
  loadConfig,
  startOpsServer,
} from '@tributary/shared';
import { monitorSettings } from './connections.js';
import { startMonitor } from './monitor.js';

const logger = createLogger('monitor');
try {
  const config = loadConfig(process.env, { PORT: '3002' });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'monitor');
  const monitor = await startMonitor({
    eventLog,
    topics: { predictions: config.TOPIC_PREDICTIONS, labels: config.TOPIC_LABELS, deadLetter: config.TOPIC_DEAD_LETTER },
    groupId: `${config.CONSUMER_GROUP_PREFIX}-monitor`,
    registry,
    logger,
    ...monitorSettings(config),
  });
  const ops = await startOpsServer({ registry, host: config.HOST, port: config.PORT, ready: () => eventLog.ping() });
  logger.info(`monitor running; ${describeBackends(config)}; metrics on ${ops.url}/metrics`);
  const shutdown = async () => {
    await monitor.stop();
    await ops.close();
    await eventLog.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('monitor', error);
}
