/** Runs the simulator on its own against Kafka and an inference service: `npm start -w services/simulator`. */
import { exitOnStartupError, createEventLog, createLogger, fraud, loadConfig } from '@tributary/shared';
import { startSimulator } from './simulator.js';

try {
  const config = loadConfig();
  const logger = createLogger('simulator', config.LOG_LEVEL);
  if (!config.KAFKA_BROKERS)
    throw new Error(
      'KAFKA_BROKERS must be set: on its own the simulator publishes to Kafka (the embedded default runs it inside `npm start`)',
    );
  const eventLog = createEventLog(config, 'simulator');
  const simulator = startSimulator({
    eventLog,
    topics: { transactions: config.TOPIC_TRANSACTIONS, labels: config.TOPIC_LABELS },
    inferenceUrl: config.INFERENCE_URL,
    apiKey: config.SIMULATOR_API_KEY,
    ratePerSecond: config.SIMULATOR_RATE,
    fraudRate: config.SIMULATOR_FRAUD_RATE,
    meanLabelDelayMs: config.SIMULATOR_LABEL_DELAY,
    users: config.SIMULATOR_USERS,
    seed: config.SIMULATOR_SEED,
    maxInFlight: config.SIMULATOR_MAX_IN_FLIGHT,
    drift: config.SIMULATOR_DRIFT,
    logger,
  });
  const drift = config.SIMULATOR_DRIFT ? `; drift ${fraud.describeDrift(config.SIMULATOR_DRIFT)}` : '';
  logger.info(
    `simulator: ${config.SIMULATOR_RATE} transactions/s to ${config.TOPIC_TRANSACTIONS}, scored by ${config.INFERENCE_URL}${drift}; event ids e_${config.SIMULATOR_SEED}_${simulator.run}_<n>`,
  );
  const report = setInterval(() => logger.info(simulator.stats, 'simulator progress'), 30_000);
  report.unref();
  const shutdown = async () => {
    await simulator.stop();
    logger.info(simulator.stats, 'simulator stopped');
    await eventLog.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
} catch (error) {
  exitOnStartupError('simulator', error);
}
