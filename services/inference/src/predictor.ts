/**
 * Predictions: fetch the entities' feature-group state of every row in one round trip,
 * compute on-demand features, assemble each vector in the serving model's order, score
 * the rows together (in a worker thread, batched with concurrent requests), and hand the
 * prediction-log records to the publisher. When tracing is on, each step is a span
 * (`feature_fetch`, `model_run`, `log_publish`) of the request's span.
 */
import { randomUUID } from 'node:crypto';
import {
  assembleVector,
  endSpan,
  float32Decimal,
  entityKeys,
  failSpan,
  requestTypeError,
  startSpan,
  TributaryError,
  withSpan,
  type Span,
  type EntityKey,
  type FeatureExplanation,
  type OnlineStore,
  type PredictionLogRecord,
} from '@tributary/shared';
import type { LoadedModel } from './model.js';
import type { PredictionLog } from './prediction-log.js';
import { readWithin } from './store-read.js';
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
  /** `degradedRows` of the `rows` were answered degraded. */
  predicted(model: LoadedModel['manifest'], variant: Variant, rows: number, seconds: number, degradedRows: number): void;
  /** A shadow scoring failed (the answer was not affected). */
  shadowFailed(model: LoadedModel['manifest'], error: unknown): void;
  defaulted(features: string[]): void;
  /** On-demand features whose function threw for a request (each took its default). */
  onDemandFailed(features: { feature: string; reason: string }[]): void;
  storeFailed(error: unknown): void;
  /** A request refused with 503 because the queue of a model version that answers it was full. */
  queueFull(): void;
  /** A scoring refused (422) because the model gave a non-finite score (NaN, ±Infinity) for some of its rows. */
  nonFiniteScores(model: LoadedModel['manifest'], rows: number): void;
}

export interface PredictorOptions {
  serving: { acquire(): RoutedModels; release(routed: RoutedModels): void };
  store: OnlineStore;
  log: PredictionLog;
  stats: PredictorStats;
  featureFetchTimeoutMs: number;
  /** Randomness of bandit draws (tests pass a seeded one). */
  random?: () => number;
}

export type Predictor = ReturnType<typeof createPredictor>;

/** The entity keys a request's rows were read with, and what the store answered (null: it failed). */
interface StatesRead {
  keys?: EntityKey[];
  states?: (Record<string, string | Buffer> | null)[] | null;
}

/** One version's scores of some rows, not yet answered. */
interface Scored {
  served: ServedModel;
  variant: Variant;
  requests: PredictRequest[];
  explain: boolean;
  assembled: ReturnType<typeof assembleVector>[];
  scores: Float32Array;
  /** The store could not be read: every row degraded (a row whose state cannot be decoded is degraded alone). */
  degraded: boolean;
  requestedAt: number;
  predictedAt: number;
  seconds: number;
}

function sameKeys(a: readonly EntityKey[], b: readonly EntityKey[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.group !== b[i]!.group || a[i]!.entity !== b[i]!.entity || a[i]!.id !== b[i]!.id) return false;
  }
  return true;
}

/** What every span of a scoring carries: the model version that scored and how it was chosen. */
function scoringAttributes(model: LoadedModel['manifest'], variant: Variant, rows: number) {
  return {
    'tributary.model.name': model.name,
    'tributary.model.version': model.version,
    'tributary.model.variant': variant,
    'tributary.rows': rows,
  };
}

export function createPredictor(options: PredictorOptions) {
  const { store, log, stats } = options;
  const random = options.random ?? Math.random;

  /**
   * The stored states of every row's groups, or null when the store failed or was too slow.
   * `counted`: a failure is counted in the store's error metric (once per request: not again for its shadows).
   */
  async function fetchStates(
    keys: EntityKey[],
    span: Span | undefined,
    counted: boolean,
  ): Promise<(Record<string, string | Buffer> | null)[] | null> {
    try {
      return await readWithin(store, keys, options.featureFetchTimeoutMs);
    } catch (error) {
      if (counted) stats.storeFailed(error);
      if (span) failSpan(span, error);
      return null;
    }
  }

  /**
   * The entity keys of the requests' rows for a version, after checking that each row names
   * every entity the version needs and gives its request fields the declared types.
   */
  function checkRows(served: ServedModel, requests: PredictRequest[], places: number[] | null): EntityKey[] {
    const { plan } = served;
    const { name, version } = served.model.manifest;
    const keys: EntityKey[] = [];
    requests.forEach((request, row) => {
      for (const entity of plan.entities) {
        if (request.entities[entity] === undefined) {
          const where = places ? `rows.${places[row]}.entities.${entity}` : `entities.${entity}`;
          throw new TributaryError('VALIDATION_FAILED', `missing required field "${where}" (model ${name} version ${version} needs it)`, {
            field: where,
          });
        }
      }
      const wrong = requestTypeError(plan, request.features);
      if (wrong) {
        const where = `${places ? `rows.${places[row]}.` : ''}features.${wrong.field}`;
        const message = `${where} must be ${wrong.expected} (model ${name} version ${version} declares request:${wrong.field} ${wrong.type})`;
        throw new TributaryError('VALIDATION_FAILED', message, { field: where });
      }
      keys.push(...entityKeys(plan, request.entities));
    });
    return keys;
  }

  /**
   * Scores checked rows with one version: nothing is logged nor counted as a prediction yet
   * (`answerRows` does, once every version a request was split between has scored).
   */
  async function scoreRows(
    served: ServedModel,
    variant: Variant,
    requests: PredictRequest[],
    keys: EntityKey[],
    explain: boolean,
    /** Each request's row in the batch it came in, for error fields (`rows.<n>`); null for a single prediction. */
    places: number[] | null,
    /**
     * The stored states read for these requests, shared by their scorings: the answering version
     * sets it, a shadow whose entity keys are the same reads from it instead of from the store.
     */
    read?: StatesRead,
  ): Promise<Scored> {
    const started = performance.now();
    const requestedAt = Date.now();
    const { model, plan } = served;
    const { name, version } = model.manifest;
    const shared = read?.keys !== undefined && sameKeys(read.keys, keys);
    const fetching = shared ? undefined : startSpan('feature_fetch');
    const states = shared ? read.states! : await fetchStates(keys, fetching, variant !== 'shadow');
    if (read && !shared) Object.assign(read, { keys, states });
    const degraded = states === null;
    fetching
      ?.setAttributes({
        ...scoringAttributes(model.manifest, variant, requests.length),
        'tributary.entity_keys': keys.length,
        'tributary.degraded': degraded,
      })
      .end();
    const now = Date.now();
    const width = plan.names.length;
    const vectors = new Float32Array(requests.length * width);
    const assembled = requests.map((request, row) => {
      const rowStates = states && states.slice(row * plan.groups.length, (row + 1) * plan.groups.length);
      const result = assembleVector(plan, rowStates, request.features, now, explain);
      vectors.set(result.vector, row * width);
      return result;
    });
    // A stored state that cannot be decoded: its group took its defaults; its row's answer is
    // degraded and the store counted as failing (once per request, as a failed read is).
    const unreadable = assembled.find((a) => a.unreadable)?.unreadable;
    if (unreadable) {
      if (variant !== 'shadow') {
        stats.storeFailed(new Error(`stored state of feature group ${unreadable[0]!.group} unreadable: ${unreadable[0]!.reason}`));
      }
    }
    // The run's span covers the wait for a batch and the hop to the worker thread.
    const running = startSpan('model_run');
    const scores = await model.score(vectors, requests.length).catch((error: unknown) => {
      endSpan(running?.setAttributes(scoringAttributes(model.manifest, variant, requests.length)), error);
      throw error;
    });
    running?.setAttributes(scoringAttributes(model.manifest, variant, requests.length)).end();
    // A NaN or an infinity is no score: the request fails (422: the same input would fail
    // again), nothing is logged as a prediction.
    let nonFinite = 0;
    let row = -1;
    for (let r = 0; r < requests.length; r++) {
      if (Number.isFinite(scores[r])) continue;
      nonFinite++;
      if (row < 0) row = r;
    }
    if (nonFinite > 0) {
      stats.nonFiniteScores(model.manifest, nonFinite);
      const where = places ? ` for rows.${places[row]}` : '';
      throw new TributaryError(
        'MODEL_OUTPUT_INVALID',
        `model ${name} version ${version} gave a non-finite score (${scores[row]})${where}; no prediction was made`,
        places ? { field: `rows.${places[row]}` } : undefined,
      );
    }
    const seconds = (performance.now() - started) / 1000;
    return { served, variant, requests, explain, assembled, scores, degraded, requestedAt, predictedAt: Date.now(), seconds };
  }

  /** Counts a scoring's predictions and hands their records to the prediction log: its answers. */
  function answerRows(scored: Scored): PredictResponse[] {
    const { served, variant, requests, explain, assembled, scores, seconds } = scored;
    const { model, plan } = served;
    const { name, version } = model.manifest;
    const width = plan.names.length;
    // Each row its own: a state one row's entity cannot decode degrades that row, not the rows batched with it.
    const degradedRows = assembled.map((a) => scored.degraded || a.unreadable !== undefined);
    stats.predicted(
      model.manifest,
      variant,
      requests.length,
      seconds,
      degradedRows.reduce((n, d) => n + (d ? 1 : 0), 0),
    );
    const publishing = startSpan('log_publish');
    const responses = requests.map((request, row): PredictResponse => {
      const { vector, defaulted, explanation, ages, failedOnDemand } = assembled[row]!;
      // Counted for the answering version (a shadow's defaults are in its prediction-log records).
      if (defaulted.length > 0 && variant !== 'shadow') stats.defaulted(defaulted);
      if (failedOnDemand && variant !== 'shadow') stats.onDemandFailed(failedOnDemand);
      // The float32 score as the decimal of 9 digits that identifies it (0.0495370328, not
      // 0.04953703284263611): the answer's and the log's text alike, and shorter to write.
      const score = float32Decimal(scores[row]!);
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
        degraded: degradedRows[row]!,
        requested_at: scored.requestedAt,
        predicted_at: scored.predictedAt,
        latency_ms: seconds * 1000,
      };
      log.append(record);
      return {
        prediction_id: predictionId,
        request_id: request.request_id,
        score,
        model: { name, version },
        variant: variant as Exclude<Variant, 'shadow'>,
        degraded: degradedRows[row]!,
        defaulted,
        ...(explain ? { explanation } : {}),
      };
    });
    // Enqueued: the prediction log sends its records to the event log in batches, later.
    publishing
      ?.setAttributes({ ...scoringAttributes(model.manifest, variant, requests.length), 'tributary.degraded': degradedRows.includes(true) })
      .end();
    return responses;
  }

  /**
   * Shadows score the requests after the answer: logged, never returned, failures only counted.
   * They take over the request's hold on its snapshot; false when there is no shadow.
   */
  function shadow(routed: RoutedModels, requests: PredictRequest[], places: number[] | null, read: StatesRead): boolean {
    if (routed.shadows.length === 0) return false;
    setImmediate(() => {
      void Promise.all(
        routed.shadows.map((served) => {
          const span = startSpan('shadow');
          span?.setAttributes(scoringAttributes(served.model.manifest, 'shadow', requests.length));
          const scoring = async () =>
            answerRows(await scoreRows(served, 'shadow', requests, checkRows(served, requests, places), false, places, read));
          return withSpan(span, scoring).then(
            () => endSpan(span),
            (error: unknown) => {
              endSpan(span, error);
              stats.shadowFailed(served.model.manifest, error);
            },
          );
        }),
      ).finally(() => options.serving.release(routed));
    });
    return true;
  }

  async function predictRows(requests: PredictRequest[], explain: boolean, batch: boolean): Promise<PredictResponse[]> {
    const routed = options.serving.acquire();
    const places = batch ? requests.map((_, row) => row) : null;
    const read: StatesRead = {};
    let shadowed = false;
    try {
      const responses = await answer(routed, requests, explain, places, read);
      shadowed = shadow(routed, requests, places, read);
      return responses;
    } catch (error) {
      // Counted once per request refused: not for a shadow (its client had the answer), nor
      // again for each version whose queue a request split by a rollout found full.
      if (error instanceof TributaryError && error.code === 'OVERLOADED') stats.queueFull();
      throw error;
    } finally {
      if (!shadowed) options.serving.release(routed);
    }
  }

  /** Scores every row with the version the routing policy gives it. */
  async function answer(
    routed: RoutedModels,
    requests: PredictRequest[],
    explain: boolean,
    places: number[] | null,
    read: StatesRead,
  ): Promise<PredictResponse[]> {
    const { champion, policy } = routed;
    if (policy.kind === 'champion') {
      return answerRows(await scoreRows(champion, 'champion', requests, checkRows(champion, requests, places), explain, places, read));
    }
    // Each row to its version; the rows of one version are scored together.
    const stickyField = policy.kind === 'ab' ? (policy.entity ?? champion.plan.entities[0]) : undefined;
    const groups = new Map<string, { variant: Variant; rows: number[] }>();
    requests.forEach((request, row) => {
      // Own fields only: a stored policy naming "constructor" must not reach Object.prototype.
      const entityId = stickyField !== undefined && Object.hasOwn(request.entities, stickyField) ? request.entities[stickyField]! : null;
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
    // Every row checked against its version before any is scored, and nothing logged until
    // every version has scored: a request that fails leaves no prediction behind.
    const checked = [...groups].map(([key, { variant, rows }]) => {
      const served = routed.versions.get(key.slice(key.indexOf('\u0000') + 1))!;
      const part = rows.map((row) => requests[row]!);
      const partPlaces = places && rows.map((row) => places[row]!);
      return { served, variant, rows, part, partPlaces, keys: checkRows(served, part, partPlaces) };
    });
    // One read of the store for the request, whatever versions its rows go to (their keys version after version), and
    // a failure counted once: each version read and counted on its own. All the rows in one version: what they read
    // serves the shadows too.
    let reads: (StatesRead | undefined)[] = checked.map(() => read);
    if (checked.length > 1) {
      const keys = checked.flatMap((part) => part.keys);
      const fetching = startSpan('feature_fetch');
      const states = await fetchStates(keys, fetching, true);
      fetching?.setAttributes({ 'tributary.entity_keys': keys.length, 'tributary.degraded': states === null }).end();
      let at = 0;
      reads = checked.map((part) => ({ keys: part.keys, states: states && states.slice(at, (at += part.keys.length)) }));
    }
    const settled = await Promise.allSettled(
      checked.map(({ served, variant, part, partPlaces, keys }, i) =>
        scoreRows(served, variant, part, keys, explain, partPlaces, reads[i]),
      ),
    );
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const responses = new Array<PredictResponse>(requests.length);
    settled.forEach((outcome, i) => {
      const answers = answerRows((outcome as PromiseFulfilledResult<Scored>).value);
      checked[i]!.rows.forEach((row, j) => (responses[row] = answers[j]!));
    });
    return responses;
  }

  return {
    async predict(request: PredictRequest, explain: boolean): Promise<PredictResponse> {
      return (await predictRows([request], explain, false))[0]!;
    },
    predictBatch: (requests: PredictRequest[], explain: boolean) => predictRows(requests, explain, true),
  };
}
