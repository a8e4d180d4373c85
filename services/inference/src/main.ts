/** Runs the inference service on its own: `npm start -w services/inference`. */
import {
  exitOnStartupError,
  createLogger,
  createEventLog,
  createOnlineStore,
  createRegistry,
  describeBackends,
  loadConfig,
  startTracing,
} from '@tributary/shared';
import { startInference } from './service.js';

/**
 * kafkajs's retries for the pushes of the push API (8 elsewhere: most of a minute while the
 * brokers are unreachable). A push is answered 503 at its deadline (EVENTS_PUBLISH_TIMEOUT)
 * while its publish goes on: with 2 retries it gives up within about a second instead of
 * piling up behind the deadline.
 */
const PUSH_RETRY = { initialRetryTime: 200, retries: 2 };

try {
  const config = loadConfig();
  const logger = createLogger('inference', config.LOG_LEVEL);
  const tracing = await startTracing(config, { service: 'tributary-inference', logger });
  const registry = createRegistry();
  const eventLog = createEventLog(config, 'inference', { retry: PUSH_RETRY });
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
