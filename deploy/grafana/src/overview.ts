/**
 * "Tributary overview": is the system serving, and fast? Traffic, latency, errors and
 * degraded predictions, refused requests, the serving model version, the feature pipeline's
 * lag and freshness, and what the monitor consumes.
 */
import { DashboardCursorSync, type Dashboard } from '@grafana/schema';
import { THRESHOLDS } from '../../prometheus/src/alerts.js';
import { BUILT_IN_ANNOTATIONS, layout, query, stat, table, timeSeries } from './panels.js';

const inference = [
  timeSeries({
    title: 'Predictions per second',
    description: 'Predictions served by the inference service, per model, version and variant (tributary_predictions_total).',
    unit: 'ops',
    min: 0,
    stack: true,
    queries: [query('sum by (model, version, variant) (rate(tributary_predictions_total[1m]))', '{{model}} {{version}} {{variant}}')],
  }),
  timeSeries({
    title: 'Prediction latency p50 / p99',
    description:
      'Time from request to score of the versions that answer (shadows left out, as PredictionLatencyHigh leaves them), from the tributary_prediction_duration_seconds histogram. The dashed line is the PredictionLatencyHigh alert threshold.',
    unit: 's',
    min: 0,
    thresholds: [{ value: THRESHOLDS.latencyP99Seconds, color: 'red' }],
    queries: [
      query('histogram_quantile(0.5, sum by (le) (rate(tributary_prediction_duration_seconds_bucket{variant!="shadow"}[1m])))', 'p50'),
      query('histogram_quantile(0.99, sum by (le) (rate(tributary_prediction_duration_seconds_bucket{variant!="shadow"}[1m])))', 'p99'),
    ],
  }),
  timeSeries({
    title: 'Degraded predictions',
    description:
      'Share of predictions served without their stored features (online store unreachable: defaults used), per model (tributary_predictions_total{degraded="true"}).',
    unit: 'percentunit',
    min: 0,
    thresholds: [{ value: THRESHOLDS.degradedRatio, color: 'red' }],
    queries: [
      query(
        // 0 rather than no data while no prediction has been degraded (the degraded series appears with the first one).
        '(sum by (model) (rate(tributary_predictions_total{degraded="true"}[5m])) or 0 * sum by (model) (rate(tributary_predictions_total[5m]))) / sum by (model) (rate(tributary_predictions_total[5m]))',
        '{{model}}',
      ),
    ],
  }),
  timeSeries({
    title: 'Errors per second',
    description:
      'Requests answered with a 5xx other than shedding, by error code (tributary_http_server_errors_total), model runs that failed or outlasted MODEL_RUN_TIMEOUT_MS, by version and reason (tributary_model_run_failures_total), failed online-store reads (tributary_online_store_errors_total) and features imputed with their default because missing or stale (tributary_feature_defaults_total).',
    unit: 'ops',
    min: 0,
    queries: [
      query('sum by (code) (rate(tributary_http_server_errors_total[1m]))', 'server errors: {{code}}'),
      query(
        'sum by (model, version, reason) (rate(tributary_model_run_failures_total[1m]))',
        'model runs failed: {{model}} {{version}} {{reason}}',
      ),
      query('sum(rate(tributary_online_store_errors_total[1m]))', 'online store errors'),
      query('sum by (feature) (rate(tributary_feature_defaults_total[1m]))', 'defaulted: {{feature}}'),
    ],
  }),
  timeSeries({
    title: 'Refused requests per second',
    description:
      'Requests refused with 503 because the replica was overloaded (tributary_requests_shed_total) and for want of a valid API key (tributary_requests_denied_total), by reason, and with 429 for their rate limit (tributary_requests_rate_limited_total), by API key id.',
    unit: 'reqps',
    min: 0,
    stack: true,
    queries: [
      query('sum by (reason) (rate(tributary_requests_shed_total[1m]))', 'shed: {{reason}}'),
      query('sum by (reason) (rate(tributary_requests_denied_total[1m]))', 'denied: {{reason}}'),
      query('sum by (key) (rate(tributary_requests_rate_limited_total[1m]))', 'rate limited: {{key}}'),
    ],
  }),
  timeSeries({
    title: 'Prediction log',
    description:
      'Prediction-log records published to Kafka and dropped (buffer full), per second (tributary_prediction_log_records_total), and records waiting in the buffer (tributary_prediction_log_buffered).',
    unit: 'short',
    min: 0,
    queries: [
      query('sum by (outcome) (rate(tributary_prediction_log_records_total[1m]))', '{{outcome}} /s'),
      query('sum(tributary_prediction_log_buffered)', 'buffered'),
    ],
  }),
  table({
    title: 'Model serving',
    description: 'The model version each replica serves (tributary_model_serving == 1).',
    columns: [{ expr: 'tributary_model_serving == 1', name: 'serving' }],
    hide: ['__name__'],
    w: 12,
    h: 6,
  }),
  stat({
    title: 'Model reloads rejected (24h)',
    description:
      'Routing changes this replica refused (a broken version: the old one kept serving), from tributary_model_reloads_total{outcome="rejected"}.',
    unit: 'short',
    thresholds: [{ value: 1, color: 'red' }],
    queries: [query('sum(increase(tributary_model_reloads_total{outcome="rejected"}[24h]))', 'rejected')],
    w: 6,
    h: 6,
  }),
  stat({
    title: 'Model reloads loaded (24h)',
    description: 'Routing changes this replica followed (tributary_model_reloads_total{outcome="loaded"}).',
    unit: 'short',
    queries: [query('sum(increase(tributary_model_reloads_total{outcome="loaded"}[24h]))', 'loaded')],
    w: 6,
    h: 6,
  }),
];

const pipeline = [
  timeSeries({
    title: 'Events consumed per second',
    description: 'Source events read by the feature pipeline, per topic and outcome (tributary_pipeline_events_total).',
    unit: 'ops',
    min: 0,
    stack: true,
    queries: [query('sum by (topic, outcome) (rate(tributary_pipeline_events_total[1m]))', '{{topic}} {{outcome}}')],
  }),
  timeSeries({
    title: 'Consumer lag',
    description:
      'Records not yet consumed, per consumer group and topic: the source topics by the feature pipeline and the transactions and labels by the label join (tributary_pipeline_consumer_lag), the predictions and labels by the monitor (tributary_monitor_consumer_lag). The dashed line is the threshold of the ConsumerLagHigh and MonitorLagHigh alerts.',
    unit: 'short',
    min: 0,
    thresholds: [{ value: THRESHOLDS.consumerLag, color: 'red' }],
    queries: [
      query('sum by (consumer, topic) (tributary_pipeline_consumer_lag)', '{{consumer}}: {{topic}}'),
      query('sum by (topic) (tributary_monitor_consumer_lag)', 'monitor: {{topic}}'),
    ],
  }),
  timeSeries({
    title: 'Feature freshness p50 / p99',
    description:
      'Lag from an event time to the moment its features are readable in the online store, per topic (tributary_feature_freshness_seconds). The dashed line is the FeaturesStale alert threshold.',
    unit: 's',
    min: 0,
    thresholds: [{ value: THRESHOLDS.freshnessP99Seconds, color: 'red' }],
    queries: [
      query('histogram_quantile(0.5, sum by (topic, le) (rate(tributary_feature_freshness_seconds_bucket[1m])))', 'p50 {{topic}}'),
      query('histogram_quantile(0.99, sum by (topic, le) (rate(tributary_feature_freshness_seconds_bucket[1m])))', 'p99 {{topic}}'),
    ],
  }),
  timeSeries({
    title: 'Dead-lettered records per second',
    description:
      'Records sent to the dead-letter topic, per consumer and reason (late, malformed, invalid): tributary_dead_letter_records_total.',
    unit: 'ops',
    min: 0,
    stack: true,
    queries: [query('sum by (consumer, reason) (rate(tributary_dead_letter_records_total[5m]))', '{{consumer}} {{reason}}')],
  }),
];

const monitor = [
  timeSeries({
    title: 'Monitor: predictions and labels consumed per second',
    description:
      'Prediction-log records and labels read by the monitor, per stream and outcome (tributary_monitor_records_total). No prediction read for 15 minutes while the inference service publishes them raises MonitorStalled; a monitor Prometheus cannot scrape raises MonitorDown.',
    unit: 'ops',
    min: 0,
    stack: true,
    queries: [query('sum by (stream, outcome) (rate(tributary_monitor_records_total[1m]))', '{{stream}} {{outcome}}')],
    w: 24,
  }),
];

export const overview = {
  uid: 'tributary-overview',
  title: 'Tributary overview',
  description: 'Throughput, latency and errors of predictions, the streaming feature pipeline and the monitor.',
  tags: ['tributary'],
  timezone: 'browser',
  editable: false,
  graphTooltip: DashboardCursorSync.Crosshair,
  liveNow: false,
  refresh: '10s',
  schemaVersion: 39,
  version: 2,
  time: { from: 'now-30m', to: 'now' },
  timepicker: {},
  fiscalYearStartMonth: 0,
  weekStart: '',
  templating: { list: [] },
  annotations: BUILT_IN_ANNOTATIONS,
  links: [
    {
      title: 'Model quality',
      type: 'dashboards',
      tags: ['model-quality'],
      asDropdown: false,
      icon: 'dashboard',
      includeVars: false,
      keepTime: true,
      targetBlank: false,
      tooltip: '',
    },
  ],
  panels: layout([
    { title: 'Inference', panels: inference },
    { title: 'Feature pipeline', panels: pipeline },
    { title: 'Monitor', panels: monitor },
  ]),
} satisfies Dashboard;
