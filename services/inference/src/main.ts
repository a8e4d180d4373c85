/** Runs the inference service on its own: `npm start -w services/inference`. */
import {
  exitOnStartupError,
  createEventLog,
  createLogger,
  createOnlineStore,
  createRegistry,
  describeBackends,
  loadConfig,
  startTracing,
} from '@tributary/shared';
import { startInference } from './service.js';

try {
  const config = loadConfig();
  const logger = createLogger('inference', config.LOG_LEVEL);
  const tracing = await startTracing(config, { service: 'tributary-inference', logger });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'inference');
  const store = createOnlineStore(config);
  const service = await startInference(config, { eventLog, store, registry, logger });
  logger.info(`inference service listening on ${service.url}; ${describeBackends(config)}`);
  const shutdown = async () => {
    await service.close();
    await Promise.all([eventLog.close(), store.close()]);
    await tracing.stop();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('inference', error);
}
