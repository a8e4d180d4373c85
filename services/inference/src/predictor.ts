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
import { chooseVersion, type Variant } from './registry/rollout.js';
import type { RoutedModels, ServedModel } from './registry/serving.js';

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
  /** How the version was chosen: champion, canary, ab or bandit (shadow answers are never returned). */
  variant: Exclude<Variant, 'shadow'>;
  degraded: boolean;
  defaulted: string[];
  explanation?: FeatureExplanation[];
}

export interface PredictorStats {
  predicted(model: LoadedModel['manifest'], variant: Variant, rows: number, seconds: number, degraded: boolean): void;
  /** A shadow scoring failed (the answer was not affected). */
  shadowFailed(model: LoadedModel['manifest'], error: unknown): void;
  defaulted(features: string[]): void;
  storeFailed(error: unknown): void;
  queueFull(): void;
}

export interface PredictorOptions {
  serving: { readonly routed: RoutedModels };
  store: OnlineStore;
  log: PredictionLog;
  stats: PredictorStats;
  featureFetchTimeoutMs: number;
  /** Randomness of bandit draws (tests pass a seeded one). */
  random?: () => number;
}

export type Predictor = ReturnType<typeof createPredictor>;

export function createPredictor(options: PredictorOptions) {
  const { store, log, stats } = options;
  const random = options.random ?? Math.random;

  /** The stored states of every row's groups, or null when the store failed or was too slow. */
  async function fetchStates(keys: EntityKey[]): Promise<(Record<string, string | Buffer> | null)[] | null> {
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

  async function scoreRows(
    served: ServedModel,
    variant: Variant,
    requests: PredictRequest[],
    explain: boolean,
  ): Promise<PredictResponse[]> {
    const started = performance.now();
    const requestedAt = Date.now();
    const { model, plan } = served;
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
    stats.predicted(model.manifest, variant, requests.length, seconds, degraded);
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
        variant,
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
        variant: variant as Exclude<Variant, 'shadow'>,
        degraded,
        defaulted,
        ...(explain ? { explanation } : {}),
      };
    });
  }

  /** Shadows score the requests after the answer: logged, never returned, failures only counted. */
  function shadow(routed: RoutedModels, requests: PredictRequest[]): void {
    for (const served of routed.shadows) {
      setImmediate(() => {
        scoreRows(served, 'shadow', requests, false).catch((error: unknown) => stats.shadowFailed(served.model.manifest, error));
      });
    }
  }

  async function predictRows(requests: PredictRequest[], explain: boolean): Promise<PredictResponse[]> {
    const routed = options.serving.routed;
    const { champion, policy } = routed;
    if (policy.kind === 'champion') {
      const responses = await scoreRows(champion, 'champion', requests, explain);
      shadow(routed, requests);
      return responses;
    }
    // Each row to its version; the rows of one version are scored together.
    const stickyField = policy.kind === 'ab' ? (policy.entity ?? champion.plan.entities[0]) : undefined;
    const groups = new Map<string, { variant: Variant; rows: number[] }>();
    requests.forEach((request, row) => {
      const entityId = stickyField === undefined ? null : (request.entities[stickyField] ?? null);
      const choice = chooseVersion(
        champion.model.manifest.version,
        policy,
        { requestId: request.request_id, entityId },
        routed.rewards,
        random,
      );
      const key = `${choice.variant}\u0000${choice.version}`;
      const group = groups.get(key) ?? { variant: choice.variant, rows: [] };
      group.rows.push(row);
      groups.set(key, group);
    });
    const responses = new Array<PredictResponse>(requests.length);
    await Promise.all(
      [...groups].map(async ([key, { variant, rows }]) => {
        const served = routed.versions.get(key.slice(key.indexOf('\u0000') + 1))!;
        const scored = await scoreRows(
          served,
          variant,
          rows.map((row) => requests[row]!),
          explain,
        );
        rows.forEach((row, i) => (responses[row] = scored[i]!));
      }),
    );
    shadow(routed, requests);
    return responses;
  }

  return {
    async predict(request: PredictRequest, explain: boolean): Promise<PredictResponse> {
      return (await predictRows([request], explain))[0]!;
    },
    predictBatch: predictRows,
  };
}
