import { Counter, ERRORS, Gauge, Histogram, LATENCY_BUCKETS, metric, type Registry } from '@tributary/shared';
import type { AccessOptions } from './access.js';
import { RUN_FAILURES } from './batcher.js';
import { NOT_SERVER_ERRORS } from './errors.js';
import type { ScoringOptions } from './model.js';
import type { PredictionLogStats } from './prediction-log.js';
import type { PredictorStats } from './predictor.js';
import type { ServingStats } from './registry/serving.js';

export function inferenceMetrics(registry: Registry): {
  predictor: PredictorStats;
  predictionLog: PredictionLogStats;
  eventsPushed: Counter;
  serving: ServingStats;
  batchRows: Histogram;
  modelStarted: NonNullable<ScoringOptions['onStarted']>;
  runFailed: NonNullable<ScoringOptions['onRunFailure']>;
  access: Pick<AccessOptions, 'shed' | 'denied' | 'rateLimited'>;
  serverError(code: string): void;
} {
  const registers = [registry];
  const predictions = metric(
    registry,
    'tributary_predictions_total',
    () =>
      new Counter({
        name: 'tributary_predictions_total',
        help: 'Predictions served',
        labelNames: ['model', 'version', 'variant', 'degraded'],
        registers,
      }),
  );
  const duration = metric(
    registry,
    'tributary_prediction_duration_seconds',
    () =>
      new Histogram({
        name: 'tributary_prediction_duration_seconds',
        help: 'Time from request to score (feature fetch, on-demand features, model)',
        labelNames: ['model', 'version', 'variant'],
        buckets: LATENCY_BUCKETS,
        registers,
      }),
  );
  const defaults = metric(
    registry,
    'tributary_feature_defaults_total',
    () =>
      new Counter({
        name: 'tributary_feature_defaults_total',
        help: 'Features imputed with their default (missing or stale)',
        labelNames: ['feature'],
        registers,
      }),
  );
  const onDemandFailures = metric(
    registry,
    'tributary_on_demand_failures_total',
    () =>
      new Counter({
        name: 'tributary_on_demand_failures_total',
        help: 'On-demand features whose function threw for a request (each served its default)',
        labelNames: ['feature'],
        registers,
      }),
  );
  const shadowFailures = metric(
    registry,
    'tributary_shadow_failures_total',
    () =>
      new Counter({
        name: 'tributary_shadow_failures_total',
        help: 'Shadow scorings that failed (the answer, from another version, was not affected)',
        labelNames: ['model', 'version'],
        registers,
      }),
  );
  const nonFinite = metric(
    registry,
    'tributary_model_nonfinite_scores_total',
    () =>
      new Counter({
        name: 'tributary_model_nonfinite_scores_total',
        help: 'Rows a model version scored NaN or infinite (the request was answered 422, nothing logged)',
        labelNames: ['model', 'version'],
        registers,
      }),
  );
  const storeErrors = metric(
    registry,
    'tributary_online_store_errors_total',
    () =>
      new Counter({
        name: 'tributary_online_store_errors_total',
        help: 'Feature fetches that failed (predictions then degraded)',
        registers,
      }),
  );
  const logRecords = metric(
    registry,
    'tributary_prediction_log_records_total',
    () =>
      new Counter({
        name: 'tributary_prediction_log_records_total',
        help: 'Prediction-log records by outcome',
        labelNames: ['outcome'],
        registers,
      }),
  );
  const logBuffered = metric(
    registry,
    'tributary_prediction_log_buffered',
    () => new Gauge({ name: 'tributary_prediction_log_buffered', help: 'Prediction-log records waiting to be published', registers }),
  );
  const eventsPushed = metric(
    registry,
    'tributary_events_pushed_total',
    () =>
      new Counter({ name: 'tributary_events_pushed_total', help: 'Events accepted by the push API', labelNames: ['source'], registers }),
  );
  const modelInfo = metric(
    registry,
    'tributary_model_serving',
    () =>
      new Gauge({
        name: 'tributary_model_serving',
        help: 'The model version this replica serves (1), by model and version',
        labelNames: ['model', 'version'],
        registers,
      }),
  );
  const reloads = metric(
    registry,
    'tributary_model_reloads_total',
    () =>
      new Counter({
        name: 'tributary_model_reloads_total',
        help: 'Routing changes followed by this replica: loaded, or rejected (the old version kept serving)',
        labelNames: ['outcome'],
        registers,
      }),
  );
  const refused = metric(
    registry,
    'tributary_model_routing_refused',
    () =>
      new Gauge({
        name: 'tributary_model_routing_refused',
        help: 'Whether this replica refuses the routing the routing store holds (1: a version it names failed to load, an older routing serves), until the routing changes',
        registers,
      }),
  );
  const shed = metric(
    registry,
    'tributary_requests_shed_total',
    () =>
      new Counter({
        name: 'tributary_requests_shed_total',
        help: 'Requests refused with 503 because the replica was overloaded',
        labelNames: ['reason'],
        registers,
      }),
  );
  const denied = metric(
    registry,
    'tributary_requests_denied_total',
    () =>
      new Counter({
        name: 'tributary_requests_denied_total',
        help: 'Requests refused for want of a valid API key',
        labelNames: ['reason'],
        registers,
      }),
  );
  const rateLimited = metric(
    registry,
    'tributary_requests_rate_limited_total',
    () =>
      new Counter({
        name: 'tributary_requests_rate_limited_total',
        help: 'Requests refused with 429 for their rate limit, by API key id (anonymous: without keys)',
        labelNames: ['key'],
        registers,
      }),
  );
  const serverErrors = metric(
    registry,
    'tributary_http_server_errors_total',
    () =>
      new Counter({
        name: 'tributary_http_server_errors_total',
        help: 'Requests answered with a 5xx other than shedding (those are tributary_requests_shed_total) or a replica shutting down (SHUTTING_DOWN, not counted), by error code',
        labelNames: ['code'],
        registers,
      }),
  );
  const batchRows = metric(
    registry,
    'tributary_model_batch_rows',
    () =>
      new Histogram({
        name: 'tributary_model_batch_rows',
        help: 'Rows per model run (dynamic batching)',
        buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
        registers,
      }),
  );
  const runFailures = metric(
    registry,
    'tributary_model_run_failures_total',
    () =>
      new Counter({
        name: 'tributary_model_run_failures_total',
        help: 'Model runs (batches) that failed (crash: the worker thread died or the run threw) or outlasted MODEL_RUN_TIMEOUT_MS (timeout); their requests were answered 503',
        labelNames: ['model', 'version', 'reason'],
        registers,
      }),
  );
  // Every known label value starts at 0: a counter series that first appears at 1 shows no
  // increase() or rate() in Prometheus, so a first rejected reload, shed request, dropped
  // record or failed model run would raise no alert and show nothing on the dashboards.
  for (const outcome of ['loaded', 'rejected']) reloads.inc({ outcome }, 0);
  for (const outcome of ['published', 'dropped']) logRecords.inc({ outcome }, 0);
  for (const reason of ['event_loop_delay', 'model_queue_full']) shed.inc({ reason }, 0);
  for (const reason of ['missing_key', 'invalid_key', 'admin_disabled']) denied.inc({ reason }, 0);
  for (const [code, { status }] of Object.entries(ERRORS)) if (status >= 500 && !NOT_SERVER_ERRORS.has(code)) serverErrors.inc({ code }, 0);
  return {
    batchRows,
    modelStarted(model) {
      for (const reason of RUN_FAILURES) runFailures.inc({ model: model.name, version: model.version, reason }, 0);
    },
    runFailed: (model, reason) => runFailures.inc({ model: model.name, version: model.version, reason }),
    serving: {
      serving(name, version) {
        modelInfo.reset();
        modelInfo.set({ model: name, version }, 1);
      },
      reloaded: (outcome) => reloads.inc({ outcome }),
      refusing: (isRefused) => refused.set(isRefused ? 1 : 0),
    },
    access: {
      shed: (reason) => shed.inc({ reason }),
      denied: (reason) => denied.inc({ reason }),
      rateLimited: (key, count) => rateLimited.inc({ key }, count ?? 1),
    },
    predictor: {
      predicted(model, variant, rows, seconds, degradedRows) {
        const labels = { model: model.name, version: model.version, variant };
        if (rows > degradedRows) predictions.inc({ ...labels, degraded: 'false' }, rows - degradedRows);
        if (degradedRows > 0) predictions.inc({ ...labels, degraded: 'true' }, degradedRows);
        duration.observe({ model: model.name, version: model.version, variant }, seconds);
      },
      shadowFailed: (model) => shadowFailures.inc({ model: model.name, version: model.version }),
      defaulted(features) {
        for (const feature of features) defaults.inc({ feature });
      },
      onDemandFailed(failures) {
        for (const { feature } of failures) onDemandFailures.inc({ feature });
      },
      storeFailed() {
        storeErrors.inc();
      },
      queueFull: () => shed.inc({ reason: 'model_queue_full' }),
      nonFiniteScores: (model, rows) => nonFinite.inc({ model: model.name, version: model.version }, rows),
    },
    predictionLog: {
      published: (count) => logRecords.inc({ outcome: 'published' }, count),
      dropped: (count) => logRecords.inc({ outcome: 'dropped' }, count),
      buffered: (count) => logBuffered.set(count),
    },
    eventsPushed,
    serverError: (code) => serverErrors.inc({ code }),
  };
}
