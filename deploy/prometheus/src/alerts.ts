/**
 * The Prometheus alerting rules of Tributary, one group per part of the system.
 * deploy/prometheus/build.ts writes them to deploy/prometheus/alerts.yml; every alert has a
 * runbook section in docs/alerts.md (anchor: the alert name in lower case) and promtool unit
 * tests in deploy/prometheus/tests/*.test.yml.
 */

export type Severity = 'critical' | 'warning';

export interface AlertRule {
  alert: string;
  expr: string;
  /** How long the condition must hold before the alert fires (omitted: at once). */
  for?: string;
  severity: Severity;
  summary: string;
  description: string;
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

/** Thresholds shared by the rules, the dashboards' threshold lines and the runbooks. */
export const THRESHOLDS = {
  /**
   * A bound of the latency histogram's buckets (`LATENCY_BUCKETS`), the first above the default
   * fetch timeout (250 ms): `histogram_quantile` interpolates within a bucket, so a threshold
   * inside one (0.25 in (0.128, 0.256]) is crossed when a fifth of requests take over 128 ms,
   * none over 250; at a bound it is crossed only when more than 1% take longer.
   */
  latencyP99Seconds: 0.256,
  degradedRatio: 0.05,
  shedRatio: 0.01,
  freshnessP99Seconds: 10,
  consumerLag: 10_000,
  psi: 0.25,
  /** PSI a significant drift must also reach to raise FeatureDrifted: the start of a moderate shift. */
  driftPsi: 0.1,
  qualityDrop: 0.05,
  /**
   * Labelled predictions of each class (label 1, label 0) a ROC AUC compared must rest on: its
   * spread is set by the rarer class. With 50 of each, an hour's AUC of an unchanged model
   * (AUC 0.85) falls 0.05 below the day's in about 3% of hours (docs/alerts.md).
   */
  minEachClass1h: 50,
  /** The same for each of two days compared: both sides vary, so more of each class. */
  minEachClass24h: 200,
  minEstimated1h: 100,
  /** Minutes in which the monitor consumed none of the prediction-log records published, for MonitorStalled. */
  monitorStalledMinutes: 10,
  /**
   * Minutes a member of a consumer group (a monitor, a feature service) has handled no batch of a
   * partition it holds while records of it wait, for MonitorPartitionsStuck and ConsumerPartitionsStuck.
   */
  stuckMinutes: 10,
  /** How far back a model must have had a label joined for NoLabelsReceived: the default join window. */
  labelsSeenWithinDays: 7,
} as const;

const T = THRESHOLDS;

export const RUNBOOK = 'docs/alerts.md';

/**
 * At least `n` labelled predictions of each class in the 24h window (negatives: labelled minus
 * positives), per series without the labels of the process that exported it; `offset` as in
 * PromQL (' offset 1d') or ''.
 */
function eachClassAtLeast(n: number, offset: string): string {
  const positives = `tributary_model_labelled_positives{window="24h"}${offset}`;
  const labelled = `tributary_model_labelled_predictions{window="24h"}${offset}`;
  return `max without (instance, pod) (${positives}) >= ${n} and ignoring (metric) max without (instance, pod) (${labelled} - ${positives}) >= ${n}`;
}

export function runbookUrl(alert: string): string {
  return `${RUNBOOK}#${alert.toLowerCase()}`;
}

export const groups: RuleGroup[] = [
  {
    name: 'tributary-inference',
    rules: [
      {
        alert: 'PredictionLatencyHigh',
        // Shadows answer no one: their scoring runs after the answer, and a slow shadow must not page.
        expr: `histogram_quantile(0.99, sum by (model, version, le) (rate(tributary_prediction_duration_seconds_bucket{variant!="shadow"}[5m]))) > ${T.latencyP99Seconds}`,
        for: '10m',
        severity: 'critical',
        summary: 'p99 prediction latency of {{ $labels.model }} {{ $labels.version }} is {{ $value | humanizeDuration }}',
        description: `The 99th percentile of the time from request to score has been above ${T.latencyP99Seconds * 1000} ms (the latency histogram's bucket bound just above the default online-store fetch timeout, 250 ms) for 10 minutes.`,
      },
      {
        alert: 'PredictionsDegraded',
        expr: `sum by (model) (rate(tributary_predictions_total{degraded="true"}[5m])) / sum by (model) (rate(tributary_predictions_total[5m])) > ${T.degradedRatio}`,
        for: '5m',
        severity: 'critical',
        summary: '{{ $value | humanizePercentage }} of {{ $labels.model }} predictions are degraded',
        description: `More than ${T.degradedRatio * 100}% of predictions have been served without their stored features (online store failing or slow: defaults used) for 5 minutes.`,
      },
      {
        alert: 'OnlineStoreErrors',
        expr: 'sum by (job, instance) (rate(tributary_online_store_errors_total[5m])) > 0',
        for: '10m',
        severity: 'warning',
        summary: 'Feature fetches fail on {{ $labels.instance }} ({{ $value | printf "%.2f" }}/s)',
        description: 'Reads from the online store have kept failing for 10 minutes; the predictions concerned are served degraded.',
      },
      {
        alert: 'RequestsShed',
        // Requests answered are counted by the latency histogram (one observation per request
        // and version that answered it), not by tributary_predictions_total, which counts rows:
        // a batch of 256 rows would weigh 256 times a request shed. Shadows answer no one.
        expr: `sum by (job) (rate(tributary_requests_shed_total[5m])) / (sum by (job) (rate(tributary_requests_shed_total[5m])) + sum by (job) (rate(tributary_prediction_duration_seconds_count{variant!="shadow"}[5m]))) > ${T.shedRatio}`,
        for: '5m',
        severity: 'warning',
        summary: '{{ $value | humanizePercentage }} of prediction requests are refused with 503',
        description: `More than ${T.shedRatio * 100}% of requests have been shed (503: event loop delayed or model queue full) for 5 minutes. Other 5xx answers raise ServerErrors.`,
      },
      {
        alert: 'ServerErrors',
        expr: 'sum by (job, instance, code) (increase(tributary_http_server_errors_total[5m])) > 0',
        for: '5m',
        severity: 'warning',
        summary: '{{ $labels.instance }} answered {{ $value | humanize }} requests with {{ $labels.code }} in 5 minutes',
        description:
          'Requests have been failing with a 5xx other than shedding for 5 minutes: a dependency the route needs does not answer (*_UNAVAILABLE), or a fault in the service (INTERNAL).',
      },
      {
        alert: 'ModelRunsFailing',
        // A 10-minute window held for 10 minutes: runs failing at least every 10 minutes raise
        // it, a lone crash or timeout does not, and gaps shorter than the window do not resolve
        // and raise it again.
        expr: 'sum by (model, version, reason) (increase(tributary_model_run_failures_total[10m])) > 0',
        for: '10m',
        severity: 'warning',
        summary:
          'Runs of {{ $labels.model }} {{ $labels.version }} keep failing ({{ $labels.reason }}): {{ $value | humanize }} in 10 minutes',
        description:
          'Batches of this model version have kept failing for 10 minutes, their requests answered 503 MODEL_UNAVAILABLE: crash (the run threw or its worker thread died) or timeout (it outlasted MODEL_RUN_TIMEOUT_MS; the worker thread was replaced).',
      },
      {
        alert: 'PredictionLogDropping',
        expr: 'sum by (job, instance) (increase(tributary_prediction_log_records_total{outcome="dropped"}[5m])) > 0',
        for: '1m',
        severity: 'critical',
        summary: '{{ $labels.instance }} dropped {{ $value | humanize }} prediction-log records in 5 minutes',
        description:
          'The prediction-log buffer (PREDICTION_LOG_BUFFER) is full, so records are dropped: the monitor will miss those predictions and their labels.',
      },
      {
        alert: 'ModelReloadRejected',
        // The state, not the event: a replica counts a refused routing once, and refuses it until the routing changes.
        expr: 'max by (job, instance) (tributary_model_routing_refused) > 0',
        severity: 'warning',
        summary: '{{ $labels.instance }} refuses the model routing',
        description:
          'A replica refused to load a version the routing store points to (a broken model) and keeps serving the routing before it, until the routing changes.',
      },
    ],
  },
  {
    name: 'tributary-features',
    rules: [
      {
        alert: 'FeaturesStale',
        expr: `histogram_quantile(0.99, sum by (topic, le) (rate(tributary_feature_freshness_seconds_bucket[5m]))) > ${T.freshnessP99Seconds}`,
        for: '10m',
        severity: 'warning',
        summary: 'Features from {{ $labels.topic }} are {{ $value | humanizeDuration }} old at p99',
        description: `The 99th percentile of the lag from an event to its features being readable in the online store has been above ${T.freshnessP99Seconds} s for 10 minutes.`,
      },
      {
        alert: 'ConsumerLagHigh',
        expr: `sum by (consumer, topic) (tributary_pipeline_consumer_lag) > ${T.consumerLag}`,
        for: '10m',
        severity: 'warning',
        summary: 'The consumer group {{ $labels.consumer }} is {{ $value | humanize }} records behind on {{ $labels.topic }}',
        description: `More than ${T.consumerLag} records of the topic have been waiting to be consumed for 10 minutes.`,
      },
      {
        alert: 'ConsumerPartitionsStuck',
        // Per member: one stuck while the others consume adds its backlog to ConsumerLagHigh's sum, long below the threshold.
        expr: `count without (topic, partition) (tributary_pipeline_consumer_lag > 0 and time() - tributary_pipeline_consumed_timestamp_seconds > ${T.stuckMinutes * 60})`,
        for: '5m',
        severity: 'warning',
        summary: `{{ $labels.instance }} is stuck in the consumer group {{ $labels.consumer }}: no batch handled for ${T.stuckMinutes} minutes on {{ $value }} of its partitions with records waiting`,
        description: `For 5 minutes, this member of the group has held partitions with records waiting and handled no batch of them in the last ${T.stuckMinutes} minutes, though it still answers scrapes: a batch that never ends, or batches that keep failing. No other member takes those partitions.`,
      },
    ],
  },
  {
    name: 'tributary-model-quality',
    rules: [
      {
        alert: 'FeatureDrifted',
        // The test alone flags any shift on large samples (an hour of 72k rows against 48k:
        // KS D = 0.02, p = 2e-10, PSI 0.008): the shift must also be large enough to matter.
        expr: `max by (model, version, variant, feature) (tributary_feature_drift{statistic="drifted"}) == 1 and on (model, version, variant, feature) max by (model, version, variant, feature) (tributary_feature_drift{statistic="psi"}) > ${T.driftPsi}`,
        for: '15m',
        severity: 'warning',
        summary: '{{ $labels.feature }} drifted for {{ $labels.model }} {{ $labels.version }} ({{ $labels.variant }})',
        description: `The feature's last hour differs from the version's reference profile (Bonferroni-corrected drift test) by a PSI above ${T.driftPsi}, and has for 15 minutes.`,
      },
      {
        alert: 'FeaturePsiHigh',
        expr: `max by (model, version, variant, feature) (tributary_feature_drift{statistic="psi"}) > ${T.psi}`,
        for: '15m',
        severity: 'warning',
        summary:
          'PSI of {{ $labels.feature }} for {{ $labels.model }} {{ $labels.version }} ({{ $labels.variant }}) is {{ $value | printf "%.2f" }}',
        description: `The population stability index of the feature over the last hour against the reference profile has been above ${T.psi} (a large shift) for 15 minutes.`,
      },
      {
        alert: 'ModelQualityDrop',
        // The hour's AUC rests on its rarer class: at least N labelled 1 and N labelled 0 (the day
        // holds the hour, so it has as many).
        expr: `tributary_model_quality{window="1h",metric="roc_auc"} < ignoring (window) tributary_model_quality{window="24h",metric="roc_auc"} - ${T.qualityDrop} and ignoring (window, metric) tributary_model_labelled_positives{window="1h"} >= ${T.minEachClass1h} and ignoring (window, metric) (tributary_model_labelled_predictions{window="1h"} - tributary_model_labelled_positives{window="1h"}) >= ${T.minEachClass1h}`,
        for: '30m',
        severity: 'warning',
        summary:
          'ROC AUC of {{ $labels.model }} {{ $labels.version }} ({{ $labels.variant }}) fell to {{ $value | printf "%.3f" }} over the last hour',
        description: `The last hour's ROC AUC (at least ${T.minEachClass1h} labelled predictions of each class) has been more than ${T.qualityDrop} below the last day's for 30 minutes.`,
      },
      {
        alert: 'ModelQualityDropDayOverDay',
        // Without the labels of the process that exported each side: a day apart, they are a
        // monitor restarted in between (on Kubernetes, a new pod and address), never matched.
        // Each day's AUC at least N of each class: the day before's too, which varies as much.
        expr: `max without (instance, pod) (tributary_model_quality{window="24h",metric="roc_auc"}) < max without (instance, pod) (tributary_model_quality{window="24h",metric="roc_auc"} offset 1d) - ${T.qualityDrop} and ignoring (metric) ${eachClassAtLeast(T.minEachClass24h, '')} and ignoring (metric) ${eachClassAtLeast(T.minEachClass24h, ' offset 1d')}`,
        for: '1h',
        severity: 'warning',
        summary:
          'ROC AUC of {{ $labels.model }} {{ $labels.version }} ({{ $labels.variant }}) over 24h is {{ $value | printf "%.3f" }}, down on the day before',
        description: `The last day's ROC AUC has been more than ${T.qualityDrop} below its value one day earlier for an hour, each day with at least ${T.minEachClass24h} labelled predictions of each class.`,
      },
      {
        alert: 'EstimatedQualityDrop',
        expr: `tributary_model_quality_estimated{window="1h",metric="roc_auc"} < ignoring (window) tributary_model_quality_estimated{window="24h",metric="roc_auc"} - ${T.qualityDrop} and ignoring (window, metric) tributary_model_estimated_predictions{window="1h"} >= ${T.minEstimated1h}`,
        for: '30m',
        severity: 'warning',
        summary:
          'Estimated ROC AUC of {{ $labels.model }} {{ $labels.version }} ({{ $labels.variant }}) fell to {{ $value | printf "%.3f" }}',
        description: `The confidence-based estimate (CBPE, from the scores alone, before labels arrive) of the last hour's ROC AUC (at least ${T.minEstimated1h} predictions) has been more than ${T.qualityDrop} below the last day's for 30 minutes.`,
      },
      {
        alert: 'NoLabelsReceived',
        // Only for a model whose predictions had labels joined in the last days (its label-delay count grew): a new
        // model's first labels may be days away. The count's growth, not the series' presence: the monitor exports a
        // version's series, frozen at its last count, for as long as the version serves.
        expr: `sum by (model) (rate(tributary_predictions_total[15m])) > 0 unless on (model) sum by (model) (increase(tributary_monitor_label_delay_seconds_count[2h])) > 0 and on (model) sum by (model) (increase(tributary_monitor_label_delay_seconds_count[${T.labelsSeenWithinDays}d])) > 0`,
        for: '15m',
        severity: 'warning',
        summary: 'Labels of {{ $labels.model }} stopped joining: none for 2 hours while it serves',
        description: `The monitor has joined no label to a prediction of this model in the last 2 hours although its predictions flow and labels joined them in the last ${T.labelsSeenWithinDays} days: its quality metrics are going stale.`,
      },
      {
        alert: 'MonitorLagHigh',
        expr: `sum by (topic) (tributary_monitor_consumer_lag) > ${T.consumerLag}`,
        for: '10m',
        severity: 'warning',
        summary: 'The monitor is {{ $value | humanize }} records behind on {{ $labels.topic }}',
        description: `More than ${T.consumerLag} records of the topic have been waiting for the monitor for 10 minutes: its drift and quality gauges describe the past.`,
      },
      {
        alert: 'MonitorDown',
        // The job names of deploy/prometheus/prometheus.yml (Compose) and deploy/k8s/prometheus-scrape.yml.
        expr: 'up{job=~"monitor|tributary-monitor"} == 0',
        for: '5m',
        severity: 'warning',
        summary: 'Prometheus cannot scrape the monitor at {{ $labels.instance }}',
        description:
          'The monitor has not answered a scrape for 5 minutes: its drift and quality gauges are gone, so the drift and quality alerts cannot fire (and those firing resolve), and the canary rule does not run.',
      },
      {
        alert: 'MonitorStalled',
        // Whether it runs or not: absent, its counter adds nothing, and the condition holds.
        expr: `sum(rate(tributary_prediction_log_records_total{outcome="published"}[${T.monitorStalledMinutes}m])) > 0 unless sum(rate(tributary_monitor_records_total{stream="predictions"}[${T.monitorStalledMinutes}m])) > 0`,
        for: '5m',
        severity: 'warning',
        summary: 'No monitor is consuming the predictions the inference service publishes',
        description: `For 5 minutes, no monitor has consumed a prediction-log record in the last ${T.monitorStalledMinutes} minutes while the inference service published some: the monitor is down, stuck or reading another topic. Its drift and quality gauges are frozen or gone, so the drift and quality alerts cannot fire.`,
      },
      {
        alert: 'MonitorPartitionsStuck',
        // Per monitor: MonitorStalled's sum misses one stuck while others consume, and MonitorLagHigh's sees its backlog only past the threshold.
        expr: `count without (topic, partition) (tributary_monitor_consumer_lag > 0 and time() - tributary_monitor_consumed_timestamp_seconds > ${T.stuckMinutes * 60})`,
        for: '5m',
        severity: 'warning',
        summary: `The monitor at {{ $labels.instance }} is stuck: no batch handled for ${T.stuckMinutes} minutes on {{ $value }} of its partitions with records waiting`,
        description: `For 5 minutes, this monitor has held partitions of the predictions or labels with records waiting and handled no batch of them in the last ${T.stuckMinutes} minutes, though it still answers scrapes: a batch that never ends, or batches that keep failing. No other monitor takes those partitions: their predictions and labels are missing from the drift and quality metrics while MonitorStalled stays quiet.`,
      },
    ],
  },
];
