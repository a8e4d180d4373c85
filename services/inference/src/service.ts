/** Starts the inference service on given connections: used by `main.ts` and the embedded default. */
import { fraud, planModelFeatures, type Config, type EventLog, type Logger, type OnlineStore, type Registry } from '@tributary/shared';
import { buildApp } from './app.js';
import { predictionPublisher } from './log-publisher.js';
import { inferenceMetrics } from './metrics.js';
import { scoringOptions } from './model.js';
import { ModelRegistry } from './registry/registry.js';
import { MemoryRewardStore, RedisRewardStore, type RewardStore } from './registry/rewards.js';
import { MemoryRoutingStore, RedisRoutingStore, type RoutingStore } from './registry/routing.js';
import { ModelServing } from './registry/serving.js';

export interface InferenceService {
  url: string;
  close(): Promise<void>;
}

export interface InferenceConnections {
  eventLog: EventLog;
  store: OnlineStore;
  registry: Registry;
  logger: Logger;
  /** Where the model routing is kept; by default Redis when REDIS_URL is set, else memory. */
  routes?: RoutingStore;
  /** Where bandit rewards are kept; by default Redis when REDIS_URL is set, else memory. */
  rewards?: RewardStore;
}

export function createRewardStore(config: Config): RewardStore {
  return config.REDIS_URL
    ? new RedisRewardStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX)
    : new MemoryRewardStore();
}

export function createRoutingStore(config: Config): RoutingStore {
  return config.REDIS_URL
    ? new RedisRoutingStore({ url: config.REDIS_URL, cluster: config.REDIS_CLUSTER }, config.REDIS_KEY_PREFIX)
    : new MemoryRoutingStore();
}

export async function createInferenceApp(config: Config, deps: InferenceConnections) {
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  // On Kafka, the prediction log is produced off the event loop: by librdkafka's threads or a worker thread.
  const publisher = config.KAFKA_BROKERS ? predictionPublisher(config, deps.logger) : undefined;
  const routes = deps.routes ?? createRoutingStore(config);
  const rewards = deps.rewards ?? createRewardStore(config);
  const closeOwnStores = async () => {
    if (!deps.routes) await routes.close();
    if (!deps.rewards) await rewards.close();
  };
  const models = new ModelRegistry(config.MODEL_REGISTRY_DIR, routes, (manifest) => planModelFeatures(manifest, example.catalog), {
    warn: (message) => deps.logger.warn(message),
  });
  const metrics = inferenceMetrics(deps.registry);
  const serving = await ModelServing.start({
    registry: models,
    name: config.MODEL_NAME,
    catalog: example.catalog,
    scoring: {
      ...scoringOptions(config),
      onBatch: (rows) => metrics.batchRows.observe(rows),
      onStarted: metrics.modelStarted,
      onRunFailure: metrics.runFailed,
    },
    pollMs: config.ROUTING_POLL_INTERVAL,
    logger: deps.logger,
    stats: metrics.serving,
    rewards,
  }).catch(async (error) => {
    await closeOwnStores();
    await publisher?.close();
    throw error;
  });
  const app = await buildApp({
    ...deps,
    models,
    serving,
    rewards,
    modelName: config.MODEL_NAME,
    groups: example.groups,
    sources: example.sources,
    requestFields: fraud.FraudRequestFieldsSchema,
    topics: { predictions: config.TOPIC_PREDICTIONS },
    bodyLimit: config.BODY_LIMIT_BYTES,
    maxEventsPerRequest: config.MAX_EVENTS_PER_REQUEST,
    eventsPublishTimeoutMs: config.EVENTS_PUBLISH_TIMEOUT,
    maxBatchRows: config.PREDICT_BATCH_MAX_ROWS,
    predictionLogCapacity: config.PREDICTION_LOG_BUFFER,
    predictionLogLingerMs: config.PREDICTION_LOG_LINGER,
    predictionLogCloseTimeoutMs: config.PREDICTION_LOG_CLOSE_TIMEOUT,
    featureFetchTimeoutMs: config.FEATURE_FETCH_TIMEOUT_MS,
    predictionLogPublisher: publisher,
    apiKeys: config.API_KEYS,
    adminKeys: config.ADMIN_API_KEYS,
    ratePerKey: config.RATE_LIMIT_PER_KEY,
    rateLimits: config.RATE_LIMITS,
    shedEventLoopDelayMs: config.SHED_EVENT_LOOP_DELAY_MS,
    trustProxy: config.TRUST_PROXY,
  });
  app.addHook('onClose', async () => {
    await serving.close();
    await closeOwnStores();
  });
  return Object.assign(app, { serving, models });
}

export async function startInference(config: Config, deps: InferenceConnections): Promise<InferenceService> {
  const app = await createInferenceApp(config, deps);
  const address = await app.listen({ host: config.HOST, port: config.PORT });
  return { url: address, close: () => app.close() };
}
