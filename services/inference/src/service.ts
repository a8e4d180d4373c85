/** Starts the inference service on given connections: used by `main.ts` and the embedded default. */
import { fraud, planFeatures, type Config, type EventLog, type Logger, type OnlineStore, type Registry } from '@tributary/shared';
import { buildApp } from './app.js';
import { loadModel } from './model.js';

export interface InferenceService {
  url: string;
  close(): Promise<void>;
}

export async function createInferenceApp(
  config: Config,
  deps: { eventLog: EventLog; store: OnlineStore; registry: Registry; logger: Logger },
) {
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const model = await loadModel(config.MODEL_DIR);
  const plan = planFeatures(model.manifest.features, example.catalog, model.manifest.defaults ?? {});
  const app = await buildApp({
    ...deps,
    model,
    plan,
    groups: example.groups,
    sources: example.sources,
    requestFields: fraud.FraudRequestFieldsSchema,
    topics: { predictions: config.TOPIC_PREDICTIONS },
    bodyLimit: config.BODY_LIMIT_BYTES,
    maxEventsPerRequest: config.MAX_EVENTS_PER_REQUEST,
    predictionLogCapacity: config.PREDICTION_LOG_BUFFER,
  });
  app.addHook('onClose', async () => model.close());
  return app;
}

export async function startInference(
  config: Config,
  deps: { eventLog: EventLog; store: OnlineStore; registry: Registry; logger: Logger },
): Promise<InferenceService> {
  const app = await createInferenceApp(config, deps);
  const address = await app.listen({ host: config.HOST, port: config.PORT });
  return { url: address, close: () => app.close() };
}
