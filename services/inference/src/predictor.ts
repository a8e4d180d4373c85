/**
 * Predictions: fetch the entities' feature-group state of every row in one round trip,
 * compute on-demand features, assemble each vector in the serving model's order, score
 * the rows together (in a worker thread, batched with concurrent requests), and hand the
 * prediction-log records to the publisher.
 */
import { randomUUID } from 'node:crypto';
import {
  assembleVector,
  entityKeys,
  TributaryError,
  type EntityKey,
  type FeatureExplanation,
  type OnlineStore,
  type PredictionLogRecord,
} from '@tributary/shared';
import type { LoadedModel } from './model.js';
import type { PredictionLog } from './prediction-log.js';
import type { ServedModel } from './registry/serving.js';

export interface PredictRequest {
  request_id: string;
  entities: Record<string, string>;
  features: Record<string, unknown>;
}

export interface PredictResponse {
  prediction_id: string;
  request_id: string;
  score: number;
  model: { name: string; version: string };
  degraded: boolean;
  defaulted: string[];
  explanation?: FeatureExplanation[];
}

export interface PredictorStats {
  predicted(model: LoadedModel['manifest'], rows: number, seconds: number, degraded: boolean): void;
  defaulted(features: string[]): void;
  storeFailed(error: unknown): void;
  queueFull(): void;
}

export interface PredictorOptions {
  serving: { readonly current: ServedModel };
  store: OnlineStore;
  log: PredictionLog;
  stats: PredictorStats;
  featureFetchTimeoutMs: number;
}

export type Predictor = ReturnType<typeof createPredictor>;

export function createPredictor(options: PredictorOptions) {
  const { store, log, stats } = options;

  /** The stored states of every row's groups, or null when the store failed or was too slow. */
  async function fetchStates(keys: EntityKey[]): Promise<(Record<string, string> | null)[] | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`online store did not answer within ${options.featureFetchTimeoutMs} ms`)),
        options.featureFetchTimeoutMs,
      );
    });
    try {
      return await Promise.race([store.read(keys), timeout]);
    } catch (error) {
      stats.storeFailed(error);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  async function predictRows(requests: PredictRequest[], explain: boolean): Promise<PredictResponse[]> {
    const started = performance.now();
    const requestedAt = Date.now();
    const { model, plan } = options.serving.current;
    const { name, version } = model.manifest;
    const keys: EntityKey[] = [];
    requests.forEach((request, row) => {
      for (const entity of plan.entities) {
        if (request.entities[entity] === undefined) {
          const where = requests.length > 1 ? `rows.${row}.entities.${entity}` : `entities.${entity}`;
          throw new TributaryError('VALIDATION_FAILED', `missing required field "${where}" (model ${name} version ${version} needs it)`, {
            field: where,
          });
        }
      }
      keys.push(...entityKeys(plan, request.entities));
    });
    const states = await fetchStates(keys);
    const degraded = states === null;
    const now = Date.now();
    const width = plan.names.length;
    const vectors = new Float32Array(requests.length * width);
    const assembled = requests.map((request, row) => {
      const rowStates = states && states.slice(row * plan.groups.length, (row + 1) * plan.groups.length);
      const result = assembleVector(plan, rowStates, request.features, now, explain);
      vectors.set(result.vector, row * width);
      return result;
    });
    const scores = await model.score(vectors, requests.length).catch((error: unknown) => {
      if (error instanceof TributaryError && error.code === 'OVERLOADED') stats.queueFull();
      throw error;
    });
    const seconds = (performance.now() - started) / 1000;
    stats.predicted(model.manifest, requests.length, seconds, degraded);
    const predictedAt = Date.now();
    return requests.map((request, row) => {
      const { vector, defaulted, explanation, ages } = assembled[row]!;
      if (defaulted.length > 0) stats.defaulted(defaulted);
      const score = scores[row]!;
      const predictionId = randomUUID();
      const features: Record<string, number> = {};
      for (let i = 0; i < width; i++) features[plan.names[i]!] = vector[i]!;
      const record: PredictionLogRecord = {
        prediction_id: predictionId,
        request_id: request.request_id,
        model: { name, version },
        variant: 'champion',
        entities: request.entities,
        request: request.features,
        features,
        defaulted,
        feature_age_ms: ages,
        score,
        degraded,
        requested_at: requestedAt,
        predicted_at: predictedAt,
        latency_ms: seconds * 1000,
      };
      log.append(record);
      return {
        prediction_id: predictionId,
        request_id: request.request_id,
        score,
        model: { name, version },
        degraded,
        defaulted,
        ...(explain ? { explanation } : {}),
      };
    });
  }

  return {
    async predict(request: PredictRequest, explain: boolean): Promise<PredictResponse> {
      return (await predictRows([request], explain))[0]!;
    },
    predictBatch: predictRows,
  };
}
