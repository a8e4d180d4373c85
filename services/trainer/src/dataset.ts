/**
 * A point-in-time-correct training set from the simulated world: events are replayed in
 * event-time order through the pipeline's own batch processor into an in-memory online
 * store, and each transaction's feature vector is assembled, with the serving code, from
 * the state just before that transaction was applied. No train/serve skew by construction.
 */
import { createFeatureProcessor } from '@tributary/features';
import {
  assembleVector,
  entityKeys,
  fraud,
  inferFeatureTypes,
  MemoryOnlineStore,
  planModelFeatures,
  type FeatureDefault,
  type FeatureTypeSpec,
  type LogRecord,
} from '@tributary/shared';
import { createTransactionGenerator } from '@tributary/simulator';

export interface Dataset {
  features: string[];
  /** The features' types, as the rows encode them (written into the manifest); a feature without one is a number. */
  featureTypes: Record<string, FeatureTypeSpec>;
  /** Defaults declared beyond the feature definitions' (a retrained model keeps its champion's). */
  defaults?: Record<string, FeatureDefault>;
  rows: Float32Array[];
  labels: number[];
  times: number[];
}

export interface DatasetOptions {
  rows: number;
  seed: number;
  users: number;
  fraudRate: number;
  /** Simulated transactions per second of event time. */
  ratePerSecond: number;
  start: number;
}

export async function buildDataset(options: DatasetOptions, features = fraud.FRAUD_MODEL_FEATURES): Promise<Dataset> {
  const example = fraud.fraudExample();
  const source = example.sources[0]!;
  let now = options.start;
  const store = new MemoryOnlineStore(() => now);
  const processor = createFeatureProcessor({
    store,
    groups: example.groups,
    source,
    allowedLatenessMs: 300_000,
    clock: () => now,
  });
  processor.open(source.topic, 0, -Infinity);
  const featureTypes = inferFeatureTypes(features, example.catalog);
  const plan = planModelFeatures({ features, feature_types: featureTypes }, example.catalog);
  const generator = createTransactionGenerator({ seed: options.seed, users: options.users, fraudRate: options.fraudRate });
  const dataset: Dataset = { features, featureTypes, rows: [], labels: [], times: [] };
  const meanGapMs = 1000 / options.ratePerSecond;
  let gapSeed = options.seed;
  for (let i = 0; i < options.rows; i++) {
    gapSeed = (gapSeed * 1103515245 + 12345) % 2 ** 31;
    now += Math.max(1, Math.round(-Math.log(1 - gapSeed / 2 ** 31) * meanGapMs));
    const { transaction, fraud: isFraud } = generator.next(now);
    const entities = { user_id: transaction.user_id, merchant_id: transaction.merchant_id };
    const states = await store.read(entityKeys(plan, entities));
    const request = { amount: transaction.amount, country: transaction.country, channel: transaction.channel };
    dataset.rows.push(assembleVector(plan, states, request, now).vector);
    dataset.labels.push(isFraud ? 1 : 0);
    dataset.times.push(now);
    const record: LogRecord = {
      topic: source.topic,
      partition: 0,
      offset: String(i),
      key: transaction.user_id,
      value: Buffer.from(JSON.stringify(transaction)),
      timestamp: now,
      headers: {},
    };
    await processor.process({ topic: source.topic, partition: 0, records: [record] });
    await processor.flush();
  }
  return dataset;
}
