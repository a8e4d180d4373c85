/** Runs the feature pipeline on its own: `npm start -w services/features`. */
import {
  createEventLog,
  createLogger,
  createOnlineStore,
  createRegistry,
  describeBackends,
  exitOnStartupError,
  loadConfig,
  SERVICE_DEFAULTS,
  startOpsServer,
  startTracing,
} from '@tributary/shared';
import { startFeatureService, type FeatureService } from './service.js';

try {
  const config = loadConfig(process.env, SERVICE_DEFAULTS.features);
  const logger = createLogger('features', config.LOG_LEVEL);
  const tracing = await startTracing(config, { service: 'tributary-features', logger });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'features');
  const store = createOnlineStore(config);
  let features: FeatureService | null = null;
  let stopping = false;
  // Served while the pipeline joins its consumer groups, which it may take seconds to do while it
  // already applies a backlog: its metrics count from the first batch. Ready once started, whatever
  // Redis and Kafka do: the pipeline waits through their outages and resumes from its commits.
  const ops = await startOpsServer({
    registry,
    host: config.HOST,
    port: config.PORT,
    started: () => features !== null,
    notReady: () => (stopping ? 'stopping' : features === null ? 'starting: joining the consumer groups' : null),
    dependencies: {
      online_store: { ping: () => store.ping() },
      event_log: { ping: () => eventLog.ping(), reuseMs: 5_000 },
    },
  });
  logger.info(`feature pipeline starting; metrics on ${ops.url}/metrics`);
  features = await startFeatureService(config, { eventLog, store, registry, logger });
  logger.info(`feature pipeline running; ${describeBackends(config)}`);
  const shutdown = async () => {
    stopping = true;
    await features?.stop();
    await ops.close();
    await Promise.all([eventLog.close(), store.close()]);
    await tracing.stop();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('features', error);
}
