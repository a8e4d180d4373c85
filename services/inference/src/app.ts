/**
 * The inference service as a Fastify application. `buildApp` registers everything and
 * never listens (tests call `app.inject`); `main.ts` listens.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { TSchema } from 'typebox';
import type { CompiledFeatureGroup, EventLog, EventSource, FeaturePlan, Logger, OnlineStore, Registry } from '@tributary/shared';
import { installErrorHandler } from './errors.js';
import { inferenceMetrics } from './metrics.js';
import type { LoadedModel } from './model.js';
import { PredictionLog } from './prediction-log.js';
import { createPredictor } from './predictor.js';
import { eventsRoute } from './routes/events.js';
import { featuresRoute } from './routes/features.js';
import { opsRoutes } from './routes/ops.js';
import { predictRoute } from './routes/predict.js';

export interface InferenceDeps {
  logger: Logger;
  registry: Registry;
  eventLog: EventLog;
  store: OnlineStore;
  model: LoadedModel;
  plan: FeaturePlan;
  groups: CompiledFeatureGroup[];
  sources: (EventSource & { schema: TSchema })[];
  requestFields: TSchema;
  topics: { predictions: string };
  bodyLimit: number;
  maxEventsPerRequest: number;
  predictionLogCapacity: number;
  featureFetchTimeoutMs?: number;
}

export async function buildApp(deps: InferenceDeps) {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimit,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  installErrorHandler(app);
  const metrics = inferenceMetrics(deps.registry);
  const predictionLog = new PredictionLog({
    eventLog: deps.eventLog,
    topic: deps.topics.predictions,
    capacity: deps.predictionLogCapacity,
    stats: metrics.predictionLog,
    logger: deps.logger,
  });
  const predict = createPredictor({
    model: deps.model,
    plan: deps.plan,
    store: deps.store,
    log: predictionLog,
    stats: metrics.predictor,
    featureFetchTimeoutMs: deps.featureFetchTimeoutMs ?? 250,
  });
  await app.register(swagger, {
    openapi: { info: { title: 'Tributary inference API', version: '0.1.0' } },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(predictRoute, { predict, entities: deps.plan.entities, requestFields: deps.requestFields });
  await app.register(eventsRoute, {
    eventLog: deps.eventLog,
    sources: deps.sources,
    maxEvents: deps.maxEventsPerRequest,
    pushed: metrics.eventsPushed,
  });
  await app.register(featuresRoute, { store: deps.store, groups: deps.groups });
  await app.register(opsRoutes, { registry: deps.registry, store: deps.store, eventLog: deps.eventLog });
  app.addHook('onClose', async () => {
    await predictionLog.close();
  });
  return Object.assign(app, { predictionLog });
}
