/**
 * "Tributary model quality": is the model still right? Drift of every served feature against
 * the version's reference profile, the score distribution, label-based quality per variant
 * beside the CBPE estimate, how late labels arrive and how many join, and quality per slice.
 */
import { DashboardCursorSync, type Dashboard } from '@grafana/schema';
import { THRESHOLDS } from '../../prometheus/src/alerts.js';
import { BUILT_IN_ANNOTATIONS, customVariable, heatmap, labelVariable, layout, query, table, timeSeries } from './panels.js';

const M = 'model=~"$model"';

const drift = [
  table({
    title: 'Feature drift (last hour vs reference profile)',
    description: `Per model version, variant and feature (the score too): PSI, Jensen-Shannon divergence (base 2, in [0, 1]; its square root is the Jensen-Shannon distance), the drift test statistic and its Bonferroni-corrected p-value, missing rate and the drift flag (tributary_feature_drift). PSI above ${THRESHOLDS.psi} held 15 minutes raises FeaturePsiHigh; a drift flag with a PSI above ${THRESHOLDS.driftPsi} held 15 minutes raises FeatureDrifted.`,
    columns: [
      {
        expr: `max without(statistic) (tributary_feature_drift{${M},statistic="psi"})`,
        name: 'PSI',
        decimals: 3,
        thresholds: [
          { value: 0.1, color: 'orange' },
          { value: THRESHOLDS.psi, color: 'red' },
        ],
      },
      { expr: `max without(statistic) (tributary_feature_drift{${M},statistic="jensen_shannon"})`, name: 'JS divergence', decimals: 3 },
      { expr: `max without(statistic) (tributary_feature_drift{${M},statistic="test_statistic"})`, name: 'test statistic', decimals: 3 },
      { expr: `max without(statistic) (tributary_feature_drift{${M},statistic="p_value"})`, name: 'p-value', decimals: 4 },
      { expr: `max without(statistic) (tributary_feature_drift{${M},statistic="missing_rate"})`, name: 'missing', unit: 'percentunit' },
      {
        expr: `max without(statistic) (tributary_feature_drift{${M},statistic="drifted"})`,
        name: 'drifted',
        decimals: 0,
        thresholds: [{ value: 1, color: 'red' }],
      },
    ],
    sortBy: 'PSI',
    w: 24,
    h: 10,
  }),
  timeSeries({
    title: 'PSI per feature',
    description:
      'Population stability index of each feature over the last hour against the reference profile. Dashed lines: 0.1 (watch), 0.25 (alert).',
    unit: 'none',
    min: 0,
    thresholds: [
      { value: 0.1, color: 'orange' },
      { value: THRESHOLDS.psi, color: 'red' },
    ],
    queries: [
      query(
        `max by (model, version, variant, feature) (tributary_feature_drift{${M},statistic="psi"})`,
        '{{feature}} ({{model}} {{version}} {{variant}})',
      ),
    ],
  }),
  timeSeries({
    title: 'Drifted features',
    description:
      'Number of features whose drift flag is set, per model version and variant (tributary_feature_drift{statistic="drifted"}).',
    unit: 'short',
    min: 0,
    queries: [
      query(`sum by (model, version, variant) (tributary_feature_drift{${M},statistic="drifted"})`, '{{model}} {{version}} {{variant}}'),
    ],
  }),
];

const scores = [
  heatmap({
    title: 'Score distribution',
    description: 'Scores served, per score bucket over time, from the prediction log (tributary_monitor_score).',
    expr: `sum by (le) (increase(tributary_monitor_score_bucket{${M}}[$__rate_interval]))`,
    yUnit: 'none',
  }),
  timeSeries({
    title: 'Score quantiles per variant',
    description:
      'Median and 90th percentile of the served score per model version and variant (tributary_monitor_score), on a logarithmic axis: a fraud model scores most transactions far below 0.01. The histogram resolves scores down to 1e-6 (buckets a factor of about 3 apart); below that, a quantile is an interpolation inside the first bucket.',
    unit: 'none',
    max: 1,
    logScale: true,
    queries: [
      query(
        `histogram_quantile(0.5, sum by (model, version, variant, le) (rate(tributary_monitor_score_bucket{${M}}[5m])))`,
        'p50 {{variant}} {{version}}',
      ),
      query(
        `histogram_quantile(0.9, sum by (model, version, variant, le) (rate(tributary_monitor_score_bucket{${M}}[5m])))`,
        'p90 {{variant}} {{version}}',
      ),
    ],
  }),
];

const quality = [
  timeSeries({
    title: 'Quality ($metric) per variant: 1h, 24h and CBPE estimate',
    description:
      'Label-based quality over the last hour and day (tributary_model_quality, by label time) and the confidence-based estimate from the scores alone over the last hour, before labels arrive (tributary_model_quality_estimated). A 1h value well below the 24h one raises ModelQualityDrop.',
    unit: 'none',
    queries: [
      query(`tributary_model_quality{${M},metric="$metric",window="1h"}`, '{{variant}} {{version}} 1h'),
      query(`tributary_model_quality{${M},metric="$metric",window="24h"}`, '{{variant}} {{version}} 24h'),
      query(`tributary_model_quality_estimated{${M},metric="$metric",window="1h"}`, '{{variant}} {{version}} 1h estimated'),
    ],
    w: 16,
    h: 9,
  }),
  timeSeries({
    title: 'Labelled predictions per window',
    description: `How many labelled predictions the quality above rests on (tributary_model_labelled_predictions), and how many of them are labelled 1 (tributary_model_labelled_positives). ModelQualityDrop compares an hour's ROC AUC only with ${THRESHOLDS.minEachClass1h} or more of each class.`,
    unit: 'short',
    min: 0,
    queries: [
      query(`tributary_model_labelled_predictions{${M}}`, '{{variant}} {{version}} {{window}}'),
      query(`tributary_model_labelled_positives{${M}}`, '{{variant}} {{version}} {{window}} positives'),
    ],
    w: 8,
    h: 9,
  }),
  timeSeries({
    title: 'Calibration: log loss and ECE (24h)',
    description: 'Log loss and expected calibration error of labelled predictions over the last day (tributary_model_quality).',
    unit: 'none',
    min: 0,
    queries: [query(`tributary_model_quality{${M},metric=~"log_loss|ece",window="24h"}`, '{{metric}} {{variant}} {{version}}')],
  }),
  timeSeries({
    title: 'Quality today vs yesterday ($metric, 24h)',
    description: 'The 24h quality now and one day earlier (offset 1d), per variant: the comparison behind ModelQualityDropDayOverDay.',
    unit: 'none',
    queries: [
      query(`tributary_model_quality{${M},metric="$metric",window="24h"}`, '{{variant}} {{version}} now'),
      query(`tributary_model_quality{${M},metric="$metric",window="24h"} offset 1d`, '{{variant}} {{version}} a day ago'),
    ],
  }),
  timeSeries({
    title: 'ROC AUC error bound (score bins)',
    description:
      'How far the ROC AUC above may be from the exact one: the monitor computes it on score bins, two predictions in one bin counting as a tie (metric="roc_auc_error_bound" of tributary_model_quality and tributary_model_quality_estimated). It grows when scores crowd into few bins. While either side\'s 1h bound is above the canary rule\'s margin (0.02 by default, dashed), the rule does not judge a canary on its AUC.',
    unit: 'none',
    min: 0,
    thresholds: [{ value: 0.02, color: 'orange' }],
    queries: [
      query(`tributary_model_quality{${M},metric="roc_auc_error_bound"}`, '{{variant}} {{version}} {{window}}'),
      query(`tributary_model_quality_estimated{${M},metric="roc_auc_error_bound",window="1h"}`, '{{variant}} {{version}} 1h estimated'),
    ],
    w: 24,
  }),
];

const labels = [
  timeSeries({
    title: 'Label delay p50 / p90 / p99',
    description:
      'Time from a prediction to its label, over the last hour, per model (tributary_monitor_label_delay_seconds, summed over versions and variants).',
    unit: 's',
    min: 0,
    queries: [0.5, 0.9, 0.99].map((q) =>
      query(
        `histogram_quantile(${q}, sum by (model, le) (rate(tributary_monitor_label_delay_seconds_bucket{${M}}[1h])))`,
        `p${Math.round(q * 100)} {{model}}`,
      ),
    ),
  }),
  timeSeries({
    title: 'Label join: joined vs expired',
    description:
      'Predictions and labels that found their other half (tributary_monitor_joins_total{outcome="joined"}) and those that waited past the join window (tributary_monitor_join_expired_total), per stream. No joins for 2h while predictions flow, after joins in the last 7 days, raises NoLabelsReceived (a new model whose first labels have not come raises nothing).',
    unit: 'ops',
    min: 0,
    queries: [
      query('sum(rate(tributary_monitor_joins_total{outcome="joined"}[5m]))', 'joined'),
      query(
        'sum by (stream, outcome) (rate(tributary_monitor_joins_total{outcome=~"waiting|duplicate|corrected"}[5m]))',
        '{{stream}} {{outcome}}',
      ),
      query('sum by (stream) (rate(tributary_monitor_join_expired_total[5m]))', 'expired {{stream}}'),
    ],
  }),
];

const slices = [
  table({
    title: 'Quality per slice (24h)',
    description:
      'Labelled predictions, accuracy and false-positive/false-negative rates per slice of a request field (MONITOR_SLICE_FIELDS) over the last day (tributary_slice_quality).',
    columns: [
      { expr: `max without(metric) (tributary_slice_quality{${M},metric="labelled"})`, name: 'labelled', decimals: 0 },
      { expr: `max without(metric) (tributary_slice_quality{${M},metric="accuracy"})`, name: 'accuracy', unit: 'percentunit' },
      {
        expr: `max without(metric) (tributary_slice_quality{${M},metric="false_positive_rate"})`,
        name: 'false positive rate',
        unit: 'percentunit',
      },
      {
        expr: `max without(metric) (tributary_slice_quality{${M},metric="false_negative_rate"})`,
        name: 'false negative rate',
        unit: 'percentunit',
      },
    ],
    sortBy: 'labelled',
    w: 12,
    h: 10,
  }),
  table({
    title: 'Disparity between slices (24h)',
    description:
      'For each sliced field: the spread of the false-positive rate between slices with 30+ negatives and of the false-negative rate between slices with 30+ positives, as max - min and max / min (tributary_slice_disparity; the ratio is +Inf where the lowest rate is 0).',
    columns: [
      { expr: `max without(measure) (tributary_slice_disparity{${M},measure="difference"})`, name: 'max - min', decimals: 3 },
      { expr: `max without(measure) (tributary_slice_disparity{${M},measure="ratio"})`, name: 'max / min', decimals: 2 },
    ],
    w: 12,
    h: 10,
  }),
  timeSeries({
    title: 'Disparity over time (max - min)',
    description:
      'The difference of the false-positive and false-negative rates between slices, per field and variant (tributary_slice_disparity).',
    unit: 'percentunit',
    min: 0,
    queries: [query(`tributary_slice_disparity{${M},measure="difference"}`, '{{field}} {{rate}} {{variant}}')],
    w: 24,
  }),
];

export const modelQuality = {
  uid: 'tributary-model-quality',
  title: 'Tributary model quality',
  description:
    'Feature drift, score distribution, label-based and estimated quality per variant, label delay and joins, quality per slice.',
  tags: ['tributary', 'model-quality'],
  timezone: 'browser',
  editable: false,
  graphTooltip: DashboardCursorSync.Crosshair,
  liveNow: false,
  refresh: '1m',
  schemaVersion: 39,
  version: 1,
  time: { from: 'now-24h', to: 'now' },
  timepicker: {},
  fiscalYearStartMonth: 0,
  weekStart: '',
  templating: {
    list: [
      labelVariable('model', 'Model', 'tributary_monitor_score_count'),
      customVariable('metric', 'Quality metric', ['roc_auc', 'accuracy', 'precision', 'recall', 'f1']),
    ],
  },
  annotations: BUILT_IN_ANNOTATIONS,
  links: [
    {
      title: 'Overview',
      type: 'dashboards',
      tags: ['tributary'],
      asDropdown: false,
      icon: 'dashboard',
      includeVars: false,
      keepTime: true,
      targetBlank: false,
      tooltip: '',
    },
  ],
  panels: layout([
    { title: 'Drift', panels: drift },
    { title: 'Scores', panels: scores },
    { title: 'Quality', panels: quality },
    { title: 'Labels', panels: labels },
    { title: 'Slices', panels: slices },
  ]),
} satisfies Dashboard;
