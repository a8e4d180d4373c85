/** Runs the feature pipeline on its own: `npm start -w services/features`. */
import {
  createEventLog,
  createLogger,
  createOnlineStore,
  createRegistry,
  describeBackends,
  exitOnStartupError,
  loadConfig,
  startOpsServer,
  startTracing,
} from '@tributary/shared';
import { startFeatureService } from './service.js';

const logger = createLogger('features');
try {
  const config = loadConfig(process.env, { PORT: '3001' });
  const tracing = await startTracing(config, { service: 'tributary-features', logger });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'features');
  const store = createOnlineStore(config);
  const features = await startFeatureService(config, { eventLog, store, registry, logger });
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
    await features.stop();
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
