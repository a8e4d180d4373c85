/**
 * One prediction: fetch the entities' feature-group state in one round trip, compute
 * on-demand features, assemble the vector in the model's order, score, and hand the
 * prediction-log record to the publisher.
 */
import { randomUUID } from 'node:crypto';
import {
  assembleVector,
  entityKeys,
  type FeatureExplanation,
  type FeaturePlan,
  type OnlineStore,
  type PredictionLogRecord,
} from '@tributary/shared';
import type { LoadedModel } from './model.js';
import type { PredictionLog } from './prediction-log.js';

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
  predicted(model: LoadedModel['manifest'], seconds: number, degraded: boolean): void;
  defaulted(features: string[]): void;
  storeFailed(error: unknown): void;
}

export interface PredictorOptions {
  model: LoadedModel;
  plan: FeaturePlan;
  store: OnlineStore;
  log: PredictionLog;
  stats: PredictorStats;
  featureFetchTimeoutMs: number;
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`online store did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function createPredictor(options: PredictorOptions) {
  const { model, plan, store, log, stats } = options;
  return async function predict(request: PredictRequest, explain: boolean): Promise<PredictResponse> {
    const started = performance.now();
    const requestedAt = Date.now();
    let states: (Record<string, string> | null)[] | null;
    try {
      states = await withTimeout(store.read(entityKeys(plan, request.entities)), options.featureFetchTimeoutMs);
    } catch (error) {
      stats.storeFailed(error);
      states = null;
    }
    const now = Date.now();
    const assembled = assembleVector(plan, states, request.features, now);
    const [score] = await model.score(assembled.vector, 1);
    const degraded = states === null;
    const predictionId = randomUUID();
    const seconds = (performance.now() - started) / 1000;
    stats.predicted(model.manifest, seconds, degraded);
    if (assembled.defaulted.length > 0) stats.defaulted(assembled.defaulted);
    const features: Record<string, number> = {};
    plan.names.forEach((name, i) => (features[name] = assembled.vector[i]!));
    const record: PredictionLogRecord = {
      prediction_id: predictionId,
      request_id: request.request_id,
      model: { name: model.manifest.name, version: model.manifest.version },
      variant: 'champion',
      entities: request.entities,
      request: request.features,
      features,
      defaulted: assembled.defaulted,
      score: score!,
      degraded,
      requested_at: requestedAt,
      predicted_at: Date.now(),
      latency_ms: seconds * 1000,
    };
    log.append(record);
    return {
      prediction_id: predictionId,
      request_id: request.request_id,
      score: score!,
      model: { name: model.manifest.name, version: model.manifest.version },
      degraded,
      defaulted: assembled.defaulted,
      ...(explain ? { explanation: assembled.explanation } : {}),
    };
  };
}
