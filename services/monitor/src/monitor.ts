/**
 * The monitor: consumes the prediction log and the labels and turns them into Prometheus
 * metrics. Each label is joined to every prediction of its `request_id` (the answering
 * version's and each shadow's; whichever comes first waits in the join store, for the join
 * window), and joined pairs feed the quality windows
 * of their model, version and variant; what waits in vain is counted when it expires.
 * Malformed records go to the dead-letter topic with the reason.
 */
import {
  Counter,
  deadLetter,
  deadLetterCounter,
  Gauge,
  LabelSchema,
  isWellFormed,
  LATENCY_BUCKETS,
  MAX_SLICE_LENGTH,
  metric,
  OTHER_SLICE,
  parseEventTime,
  publishDeadLetters,
  recordValidator,
  servedFloats,
  trackConsumerLag,
  type EventLog,
  type Label,
  type Logger,
  type LogRecord,
  type OutgoingRecord,
  type PredictionLogRecord,
  type DeadLetterReason,
  type ReferenceProfile,
  type Registry,
  type Subscription,
} from '@tributary/shared';
import { SweepError, type JoinStore, type Offer } from './join-store.js';
import { DriftBoard, type DriftSeries } from './drift.js';
import { predictionRecords } from './prediction-record.js';
import { FixedHistogram, type HistogramSeries } from './histogram.js';
import { QualityBoard, type QualitySeries } from './quality.js';
import { BanditRewards, checkCanaries, type CanaryRule, type RolloutControl } from './rollout-guard.js';

export interface MonitorOptions {
  eventLog: EventLog;
  topics: { predictions: string; labels: string; deadLetter: string };
  groupId: string;
  registry: Registry;
  logger: Logger;
  joins: JoinStore;
  /** How long a prediction waits for its label (and a label for its prediction). */
  joinWindowMs: number;
  /** The decision threshold of a model version (its manifest's). */
  thresholdOf(model: string, version: string): number;
  /** The reference profile of a model version (its manifest's), null when it has none. */
  profileOf(model: string, version: string): ReferenceProfile | null;
  /** Model/version/variant series with quality metrics at most. */
  maxSeries: number;
  /** Request fields whose values slice the quality (e.g. country, channel). */
  sliceFields?: string[];
  /** Values per slice field at most; beyond, `__other__`. */
  maxSlices?: number;
  /** How often waiting sides past their deadline are swept and counted. */
  sweepIntervalMs?: number;
  /** How often the consumer lag of the partitions held is counted again from their end offsets (default 15 s). */
  lagRefreshMs?: number;
  /** Rollouts: where bandit rewards go, and the canary rule with the routing it acts on. */
  rollouts?: {
    addReward?(model: string, version: string, trials: number, reward: number): Promise<void>;
    canary?: { rule: CanaryRule; control: RolloutControl; intervalMs?: number };
    /** Closes what the rollouts use (called by `stop`). */
    close?(): Promise<void>;
  };
  clock?: () => number;
}

interface WaitingPrediction {
  model: string;
  version: string;
  variant: string;
  score: number;
  predicted_at: number;
  /** The values of the slice fields in the request. */
  slices?: Record<string, string | number>;
}

/** A model, version and variant of the prediction log, with what its records update. */
interface ServedSeries {
  /** Its predictions' unit in the label join. */
  unit: string;
  /** Its label values in the metrics (bounded: `other` beyond the bound). */
  model: string;
  version: string;
  variant: string;
  /** The monitor's clock when a prediction or a label of the series last came (idle series are retired). */
  seenAt: number;
  /**
   * Counted (in part) as `other` or without a drift window because a bound was full when it
   * came: looked up again once retiring frees places.
   */
  overflowed: boolean;
  score: HistogramSeries;
  latency: HistogramSeries;
  /** Its label delays (made with the first label). */
  delay: HistogramSeries | null;
  /** Predictions of the batch being handled: not degraded, degraded. */
  served: [number, number];
  quality: QualitySeries;
  drift: DriftSeries | null;
  /** Feature-age series by feature group. */
  ages: Map<string, HistogramSeries>;
}

/** The series of what is counted beyond the bounds. */
const OTHER = { model: 'other', version: 'other', variant: 'other' } as const;

/**
 * Upper bounds of the score histogram: a factor of about 3 apart down to 1e-6 and up to 0.999,
 * coarser around the middle. A fraud model scores most transactions far below 0.01 (the
 * example model's reference deciles lie between 1.6e-6 and 0.0053): with equal-width buckets
 * from 0.01 its median and 90th percentile were interpolations inside the first bucket.
 */
const SCORE_BUCKETS = [
  1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.97, 0.99, 0.997, 0.999,
];

/** Feature groups whose age series a served series keeps at most (beyond, looked up per record). */
const MAX_CACHED_GROUPS = 64;

interface WaitingLabel {
  label: 0 | 1;
  at: number;
}

/** A side kept in the join store as the monitor writes it; null when it is not (damaged, or written by something else). */
function keptSide(stream: 'predictions' | 'labels', text: string): WaitingPrediction | WaitingLabel | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const side = value as Record<string, unknown>;
  if (stream === 'labels')
    return (side.label === 0 || side.label === 1) && Number.isFinite(side.at) ? (side as unknown as WaitingLabel) : null;
  const named = typeof side.model === 'string' && typeof side.version === 'string' && typeof side.variant === 'string';
  const slices = side.slices === undefined || (typeof side.slices === 'object' && side.slices !== null && !Array.isArray(side.slices));
  return named && slices && Number.isFinite(side.score) && Number.isFinite(side.predicted_at)
    ? (side as unknown as WaitingPrediction)
    : null;
}

const QUALITY_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'roc_auc_error_bound', 'log_loss', 'ece'] as const;

export interface Monitor {
  stop(): Promise<void>;
  /** Sweeps expired waiting sides now (the monitor also does it every sweep interval). */
  sweep(): Promise<void>;
  /** Applies the canary rule now (the monitor also does it every interval, when configured). */
  checkCanary(): Promise<void>;
}

/**
 * Partitions whose batches are handled at once: while one batch's offers are in Redis, the
 * next is decoded and observed (one at a time, the process waited for every round trip).
 */
const CONCURRENT_PARTITIONS = 4;

/** Records stamped further ahead of the monitor's clock than this are invalid (a time of 1e308 would never expire). */
const MAX_AHEAD_MS = 86_400_000;
/** Due sides taken off the join store's index per call of a sweep (one Redis pipeline). */
const SWEEP_CHUNK = 10_000;
/** How far ahead of the monitor's clock a prediction time moves the sliding windows at most (clocks disagree a little). */
const MAX_SKEW_MS = 60_000;
/**
 * A model/version/variant series that no prediction or label reached for this long is retired:
 * its metrics are dropped and its place under the bound is free (a monitor that follows
 * continual training sees new versions every day). Longer than every window (24h of one-hour
 * buckets, and the skew allowed), so what a retired series shows is empty by then anyway.
 */
export const RETIRE_AFTER_MS = 25 * 3_600_000 + MAX_SKEW_MS;

/**
 * Why a record whose time is a join window or more behind the monitor's clock is set aside: it
 * could join nothing that comes after it, and its side would be due before it was stored.
 */
function lateDetail(field: string, time: number | string, joinWindowMs: number): string {
  return `${field} ${JSON.stringify(time)} is older than the join window (${joinWindowMs} ms) allows: it could no longer be joined`;
}

/** A record's identity in the join store: its partition and offset (the side tells the topic). */
function recordId(record: LogRecord): string {
  return `${record.partition}:${record.offset}`;
}

/** The records of a batch after `offset` (all of them when it is undefined): records are in offset order. */
function recordsAfter(records: LogRecord[], offset: bigint | undefined): LogRecord[] {
  if (offset === undefined) return records;
  let first = 0;
  while (first < records.length && BigInt(records[first]!.offset) <= offset) first++;
  return first === 0 ? records : records.slice(first);
}

/** Increments of one counter added up per series over a batch, to be added to the counter once per series. */
class BatchCounts<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; count: number }>();

  add(labels: Record<L, string>): void {
    let key = '';
    for (const name in labels) key += `${labels[name]}\u0000`;
    const entry = this.counts.get(key);
    if (entry) entry.count++;
    else this.counts.set(key, { labels, count: 1 });
  }

  addTo(counter: Counter<L>): void {
    for (const { labels, count } of this.counts.values()) counter.inc(labels, count);
  }

  labelSets(): Record<L, string>[] {
    return Array.from(this.counts.values(), ({ labels }) => labels);
  }
}

export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  const registers = [options.registry];
  const consumed = metric(
    options.registry,
    'tributary_monitor_records_total',
    () =>
      new Counter({
        name: 'tributary_monitor_records_total',
        help: 'Records consumed by the monitor',
        labelNames: ['stream', 'outcome'],
        registers,
      }),
  );
  const scores = metric(
    options.registry,
    'tributary_monitor_score',
    () =>
      new FixedHistogram({
        name: 'tributary_monitor_score',
        help: 'Distribution of served scores, from the prediction log',
        labelNames: ['model', 'version', 'variant'],
        buckets: SCORE_BUCKETS,
        registers,
      }),
  );
  const labels = metric(
    options.registry,
    'tributary_monitor_labels_total',
    () => new Counter({ name: 'tributary_monitor_labels_total', help: 'Labels consumed, by value', labelNames: ['label'], registers }),
  );
  const joins = metric(
    options.registry,
    'tributary_monitor_joins_total',
    () =>
      new Counter({
        name: 'tributary_monitor_joins_total',
        help: "Predictions and labels offered to the label join, by outcome: joined (pairs made: a label joining 2 predictions of a request counts 2), waiting, duplicate (a replay, or a second label the same as the first), corrected (a second label other than the first: the first stays joined), unusable (its request's key holds another type: not joined), unreadable (a stored side that cannot be read: that pair not joined)",
        labelNames: ['stream', 'outcome'],
        registers,
      }),
  );
  const joinsAgain = metric(
    options.registry,
    'tributary_monitor_joins_again_total',
    () =>
      new Counter({
        name: 'tributary_monitor_joins_again_total',
        help: 'Pairs of joins_total{outcome="joined"} answered to a record offered again (its batch retried after the answer was lost, or delivered again after a restart or a rebalance): the store answers a record as it did first; a process that stopped may have counted them before',
        labelNames: ['stream'],
        registers,
      }),
  );
  const expired = metric(
    options.registry,
    'tributary_monitor_join_expired_total',
    () =>
      new Counter({
        name: 'tributary_monitor_join_expired_total',
        help: 'Predictions that got no label, and labels that found no prediction, within the join window',
        labelNames: ['stream'],
        registers,
      }),
  );
  const labelDelay = metric(
    options.registry,
    'tributary_monitor_label_delay_seconds',
    () =>
      new FixedHistogram({
        name: 'tributary_monitor_label_delay_seconds',
        help: 'Time from prediction to its label, by model, version and variant',
        labelNames: ['model', 'version', 'variant'],
        buckets: [60, 300, 900, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400],
        registers,
      }),
  );
  const clock = options.clock ?? Date.now;
  // Label values come from records: beyond `maxSeries` model/version/variant series (and
  // their features and groups), they are counted as `other`, so a stream of odd records
  // cannot grow the metrics without bound. Retiring an idle series frees its values.
  const known = new Set<string>();
  const bounded = <T extends string[]>(...parts: T): T => {
    const id = parts.join('\u0000');
    if (known.has(id)) return parts;
    if (known.size < options.maxSeries * 64) {
      known.add(id);
      return parts;
    }
    return parts.map(() => 'other') as T;
  };
  const served = metric(
    options.registry,
    'tributary_monitor_predictions_total',
    () =>
      new Counter({
        name: 'tributary_monitor_predictions_total',
        help: 'Predictions in the prediction log, by model, version, variant and whether they were degraded',
        labelNames: ['model', 'version', 'variant', 'degraded'],
        registers,
      }),
  );
  const latency = metric(
    options.registry,
    'tributary_monitor_prediction_latency_seconds',
    () =>
      new FixedHistogram({
        name: 'tributary_monitor_prediction_latency_seconds',
        help: 'Prediction latency as the inference service measured it (from the prediction log)',
        labelNames: ['model', 'version', 'variant'],
        buckets: LATENCY_BUCKETS,
        registers,
      }),
  );
  const defaults = metric(
    options.registry,
    'tributary_monitor_feature_defaults_total',
    () =>
      new Counter({
        name: 'tributary_monitor_feature_defaults_total',
        help: 'Features served with their default (missing or stale), by model, version and feature',
        labelNames: ['model', 'version', 'feature'],
        registers,
      }),
  );
  const featureAge = metric(
    options.registry,
    'tributary_monitor_feature_age_seconds',
    () =>
      new FixedHistogram({
        name: 'tributary_monitor_feature_age_seconds',
        help: 'Age of the newest event behind each feature group at prediction time (feature freshness as served)',
        labelNames: ['model', 'group'],
        buckets: [0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 6 * 3600, 86_400],
        registers,
      }),
  );
  const sliceFields = options.sliceFields ?? [];
  const board = new QualityBoard({
    thresholdOf: options.thresholdOf,
    maxSeries: options.maxSeries,
    sliceFields,
    maxSlices: options.maxSlices ?? 20,
    aheadMs: MAX_SKEW_MS,
  });
  metric(
    options.registry,
    'tributary_model_quality_estimated',
    () =>
      new Gauge({
        name: 'tributary_model_quality_estimated',
        help: 'Quality estimated from the scores alone before labels arrive (confidence-based, CBPE), over a sliding window by prediction time',
        labelNames: ['model', 'version', 'variant', 'window', 'metric'],
        registers,
        collect() {
          this.reset();
          for (const { model, version, variant, window, estimate } of board.estimates(clock())) {
            if (estimate.count === 0) continue;
            const values = {
              accuracy: estimate.accuracy,
              precision: estimate.precision,
              recall: estimate.recall,
              f1: estimate.f1,
              roc_auc: estimate.rocAuc,
              roc_auc_error_bound: estimate.rocAucErrorBound,
            };
            for (const [name, value] of Object.entries(values)) {
              if (Number.isFinite(value)) this.set({ model, version, variant, window, metric: name }, value);
            }
          }
        },
      }),
  );
  metric(
    options.registry,
    'tributary_slice_quality',
    () =>
      new Gauge({
        name: 'tributary_slice_quality',
        help: 'Quality of labelled predictions per slice (a request field value) over 24h',
        labelNames: ['model', 'version', 'variant', 'field', 'slice', 'metric'],
        registers,
        collect() {
          this.reset();
          for (const view of board.sliceViews(clock())) {
            for (const [slice, c] of Object.entries(view.slices)) {
              const labelled = c.tp + c.fp + c.tn + c.fn;
              const values = {
                labelled,
                accuracy: (c.tp + c.tn) / labelled,
                false_positive_rate: c.fp / (c.fp + c.tn),
                false_negative_rate: c.fn / (c.fn + c.tp),
              };
              const { model, version, variant, field } = view;
              for (const [name, value] of Object.entries(values)) {
                if (Number.isFinite(value)) this.set({ model, version, variant, field, slice, metric: name }, value);
              }
            }
          }
        },
      }),
  );
  metric(
    options.registry,
    'tributary_slice_disparity',
    () =>
      new Gauge({
        name: 'tributary_slice_disparity',
        help: 'Disparity over 24h of the false-positive rate between slices with 30+ negatives, and of the false-negative rate between slices with 30+ positives: max - min, and max / min',
        labelNames: ['model', 'version', 'variant', 'field', 'rate', 'measure'],
        registers,
        collect() {
          this.reset();
          for (const { model, version, variant, field, fairness } of board.sliceViews(clock())) {
            for (const [rate, disparity] of [
              ['false_positive_rate', fairness.falsePositiveRate],
              ['false_negative_rate', fairness.falseNegativeRate],
            ] as const) {
              if (Number.isFinite(disparity.difference))
                this.set({ model, version, variant, field, rate, measure: 'difference' }, disparity.difference);
              // +Inf where the lowest rate is 0; left out only when undefined (no slice's rate).
              if (!Number.isNaN(disparity.ratio)) this.set({ model, version, variant, field, rate, measure: 'ratio' }, disparity.ratio);
            }
          }
        },
      }),
  );
  metric(
    options.registry,
    'tributary_model_quality',
    () =>
      new Gauge({
        name: 'tributary_model_quality',
        help: "Quality of labelled predictions over a sliding window (by label time: the later of the label's ts and its prediction's predicted_at), at the model version threshold",
        labelNames: ['model', 'version', 'variant', 'window', 'metric'],
        registers,
        collect() {
          this.reset();
          for (const { model, version, variant, window, quality } of board.summaries(clock())) {
            if (quality.count === 0) continue;
            const values: Record<(typeof QUALITY_METRICS)[number], number> = {
              accuracy: quality.accuracy,
              precision: quality.precision,
              recall: quality.recall,
              f1: quality.f1,
              roc_auc: quality.rocAuc,
              roc_auc_error_bound: quality.rocAucErrorBound,
              log_loss: quality.logLoss,
              ece: quality.ece,
            };
            for (const name of QUALITY_METRICS) {
              if (Number.isFinite(values[name])) this.set({ model, version, variant, window, metric: name }, values[name]);
            }
          }
        },
      }),
  );
  metric(
    options.registry,
    'tributary_model_estimated_predictions',
    () =>
      new Gauge({
        name: 'tributary_model_estimated_predictions',
        help: 'Predictions in the sliding window behind tributary_model_quality_estimated',
        labelNames: ['model', 'version', 'variant', 'window'],
        registers,
        collect() {
          this.reset();
          for (const { model, version, variant, window, estimate } of board.estimates(clock())) {
            this.set({ model, version, variant, window }, estimate.count);
          }
        },
      }),
  );
  // Set beside the labelled predictions from the same summaries (registered after them, so read after they are set).
  // eslint-disable-next-line prefer-const -- assigned once the gauge that sets it is registered
  let positives: Gauge | undefined;
  metric(
    options.registry,
    'tributary_model_labelled_predictions',
    () =>
      new Gauge({
        name: 'tributary_model_labelled_predictions',
        help: 'Labelled predictions in the sliding window behind tributary_model_quality',
        labelNames: ['model', 'version', 'variant', 'window'],
        registers,
        collect() {
          this.reset();
          positives?.reset();
          for (const { model, version, variant, window, quality } of board.summaries(clock())) {
            this.set({ model, version, variant, window }, quality.count);
            positives?.set({ model, version, variant, window }, quality.positives);
          }
        },
      }),
  );
  positives = metric(
    options.registry,
    'tributary_model_labelled_positives',
    () =>
      new Gauge({
        name: 'tributary_model_labelled_positives',
        help: 'Labelled predictions whose label is 1 in the sliding window behind tributary_model_quality (the negatives: labelled_predictions minus these)',
        labelNames: ['model', 'version', 'variant', 'window'],
        registers,
      }),
  );
  const drift = new DriftBoard({
    profileOf: options.profileOf,
    maxSeries: options.maxSeries,
    aheadMs: MAX_SKEW_MS,
    onReportError: (series, error) =>
      options.logger.error({ ...series, err: error }, 'feature drift: the report of a series failed; left out of /metrics'),
  });
  metric(
    options.registry,
    'tributary_feature_drift',
    () =>
      new Gauge({
        name: 'tributary_feature_drift',
        help: "Drift of each served feature (and the score) over the last hour against the model version's reference profile, by model, version and variant",
        labelNames: ['model', 'version', 'variant', 'feature', 'statistic'],
        registers,
        collect() {
          this.reset();
          for (const { model, version, variant, report } of drift.reports(clock())) {
            for (const [feature, d] of Object.entries(report.features)) {
              const values = {
                psi: d.psi,
                jensen_shannon: d.jensenShannon,
                test_statistic: d.test.statistic,
                p_value: d.test.adjustedPValue,
                p_value_unadjusted: d.test.pValue,
                missing_rate: d.missingRate.current,
                drifted: d.drift ? 1 : 0,
              };
              for (const [statistic, value] of Object.entries(values)) {
                if (Number.isFinite(value)) this.set({ model, version, variant, feature, statistic }, value);
              }
            }
          }
        },
      }),
  );
  // What a record's model, version and variant need, found once per series and kept (at most
  // `maxCached` of them, as many as the label values `bounded` admits; beyond, made per record).
  // `bounded` answers the same for the same values once asked (until they are retired, with the
  // series that keep them), so keeping its answers changes nothing.
  const maxCached = options.maxSeries * 64;
  const servedSeries = new Map<string, Map<string, Map<string, ServedSeries>>>();
  let servedSeriesCount = 0;
  const servedSeriesOf = (rawModel: string, rawVersion: string, rawVariant: string): ServedSeries => {
    let versions = servedSeries.get(rawModel);
    let variants = versions?.get(rawVersion);
    const found = variants?.get(rawVariant);
    if (found !== undefined) return found;
    // Beyond the cache, a series is made for each record: it is counted as `other` and has no
    // drift window, so what it holds is never its own (retiring can drop it at any time).
    const cached = servedSeriesCount < maxCached;
    const [model, version, variant] = cached ? bounded(rawModel, rawVersion, rawVariant) : ['other', 'other', 'other'];
    const quality = cached ? board.seriesFor({ model: rawModel, version: rawVersion, variant: rawVariant }) : board.seriesFor(OTHER);
    const driftSeries = cached ? drift.seriesFor(rawModel, rawVersion, rawVariant) : null;
    const series: ServedSeries = {
      // The variant has no colon, and the model's colons are escaped: two records of different models or versions have
      // different units ("a:b" 1 and "a" "b:1" were one, the second a duplicate of the first). Names without a colon or
      // a backslash keep the units that joins waiting in Redis were stored with.
      unit: `${rawVariant}:${rawModel.replace(/[\\:]/g, '\\$&')}:${rawVersion}`,
      model,
      version,
      variant,
      score: scores.seriesOf(model, version, variant),
      latency: latency.seriesOf(model, version, variant),
      seenAt: clock(),
      overflowed:
        model !== rawModel ||
        version !== rawVersion ||
        variant !== rawVariant ||
        quality.model !== rawModel ||
        (driftSeries === null && !drift.remembers(rawModel, rawVersion, rawVariant)),
      served: [0, 0],
      quality,
      delay: null,
      drift: driftSeries,
      ages: new Map(),
    };
    if (cached) {
      if (versions === undefined) servedSeries.set(rawModel, (versions = new Map()));
      if (variants === undefined) versions.set(rawVersion, (variants = new Map()));
      variants.set(rawVariant, series);
      servedSeriesCount++;
    } else {
      lastUncached = series;
    }
    return series;
  };
  /** The last series made for a record beyond the cache: while it is live, what it counts into (`other`'s) is kept. */
  let lastUncached: ServedSeries | undefined;
  const ageSeriesOf = (series: ServedSeries, group: string): HistogramSeries => {
    let age = series.ages.get(group);
    if (age === undefined) {
      age = featureAge.seriesOf(...bounded(series.model, group));
      if (series.ages.size < MAX_CACHED_GROUPS) series.ages.set(group, age);
    }
    return age;
  };
  const bandit = new BanditRewards();
  /** Observes a pair; `reward`: it is a bandit trial (not when the pair may have been observed before, by another process). */
  const joined = (prediction: WaitingPrediction, label: WaitingLabel, reward: boolean) => {
    const now = clock();
    const series = servedSeriesOf(prediction.model, prediction.version, prediction.variant);
    series.seenAt = now;
    series.delay ??= labelDelay.seriesOf(series.model, series.version, series.variant);
    series.delay.observe(Math.max(0, (label.at - prediction.predicted_at) / 1000));
    // At the time the pair could first be known (the later of its two times), at most the clock:
    // a monitor that lags, or consumes a backlog after a restart, puts each pair where it would
    // have been on time, not all of them in the bucket of the moment they are joined.
    const at = Math.min(Math.max(label.at, prediction.predicted_at), now);
    board.observeIn(series.quality, prediction.score, label.label, at, prediction.slices);
    if (reward) bandit.observe(prediction, label.label, options.thresholdOf(prediction.model, prediction.version));
  };
  // The features each (bounded) model and version was served defaults for: the label sets of
  // `defaults`, to drop with the version when it is retired.
  const defaulted = new Map<string, { model: string; version: string; features: Set<string> }>();
  const defaultedOf = (model: string, version: string): Set<string> => {
    const id = `${model}\u0000${version}`;
    let entry = defaulted.get(id);
    if (entry === undefined) defaulted.set(id, (entry = { model, version, features: new Set() }));
    return entry.features;
  };
  /**
   * Retires the series idle for RETIRE_AFTER_MS. Each board and metric keeps what a live
   * series still holds or uses (its histogram series, quality and drift windows, label sets,
   * a model's feature ages) and drops the rest, and the label values dropped no longer count
   * against the bound. When that frees places, the live series that were counted as `other`
   * (or got no drift window) are let go from the cache too, to be looked up again at their
   * next record. Runs in one turn of the event loop, so no record lands in a series while it
   * is dropped.
   */
  const retire = (): number => {
    const cutoff = clock() - RETIRE_AFTER_MS;
    const live: { raw: [string, string, string]; series: ServedSeries }[] = [];
    const dropped: ServedSeries[] = [];
    const key = (...parts: string[]) => parts.join('\u0000');
    const uncache = (rawModel: string, rawVersion: string, rawVariant: string) => {
      const versions = servedSeries.get(rawModel)!;
      const variants = versions.get(rawVersion)!;
      variants.delete(rawVariant);
      servedSeriesCount--;
      if (variants.size === 0) versions.delete(rawVersion);
      if (versions.size === 0) servedSeries.delete(rawModel);
    };
    for (const [rawModel, versions] of servedSeries) {
      for (const [rawVersion, variants] of versions) {
        for (const [rawVariant, series] of variants) {
          if (series.seenAt < cutoff) {
            uncache(rawModel, rawVersion, rawVariant);
            dropped.push(series);
          } else {
            live.push({ raw: [rawModel, rawVersion, rawVariant], series });
          }
        }
      }
    }
    const retired = dropped.length;
    const liveTuples = new Set<string>();
    const liveVersions = new Set<string>();
    const liveModels = new Set<string>();
    const liveRawSeries = new Set<string>();
    const liveQuality = new Set<QualitySeries>();
    const liveHistograms = new Set<HistogramSeries>();
    /** What a live series counts into stays: its label sets, quality windows and histograms. */
    const keep = (series: ServedSeries) => {
      liveTuples.add(key(series.model, series.version, series.variant));
      liveVersions.add(key(series.model, series.version));
      liveModels.add(series.model);
      liveQuality.add(series.quality);
      liveHistograms.add(series.score).add(series.latency);
      if (series.delay) liveHistograms.add(series.delay);
      for (const age of series.ages.values()) liveHistograms.add(age);
    };
    for (const { raw, series } of live) {
      if (series.overflowed) {
        // Looked up again at its next record: a place under the bound may be free for it now. What it counts into
        // stays, its own or `other`'s, which other live series may count into too (dropping `other`'s quality windows
        // lost their last day's pairs, and its counter and histograms started again from zero). Once no live series
        // counts into `other`, a later pass drops it.
        uncache(...raw);
        if (series.drift !== null) liveRawSeries.add(key(...raw));
      } else {
        liveRawSeries.add(key(...raw));
      }
      keep(series);
    }
    // Beyond the cache, a series is made per record: the last one, while live, keeps `other`'s (it has no drift window).
    if (lastUncached !== undefined && lastUncached.seenAt >= cutoff) keep(lastUncached);
    board.retain((series) => liveQuality.has(series));
    drift.retain((model, version, variant) => liveRawSeries.has(key(model, version, variant)));
    for (const { model, version, variant } of dropped) {
      const tuple = key(model, version, variant);
      if (liveTuples.has(tuple)) continue;
      known.delete(tuple);
      served.remove({ model, version, variant, degraded: 'false' });
      served.remove({ model, version, variant, degraded: 'true' });
    }
    const held = (series: HistogramSeries) => liveHistograms.has(series);
    scores.retain(held);
    latency.retain(held);
    labelDelay.retain(held);
    for (const [id, { model, version, features }] of defaulted) {
      if (liveVersions.has(id)) continue;
      for (const feature of features) {
        known.delete(key(model, version, feature));
        defaults.remove({ model, version, feature });
      }
      defaulted.delete(id);
    }
    // A model's feature ages beyond the groups a series keeps are looked up per record: kept while the model is live.
    for (const { model, group } of featureAge.retain((series) => held(series) || liveModels.has(series.labels.model!))) {
      known.delete(key(model!, group!));
    }
    return retired;
  };
  const canaryRollbacks = metric(
    options.registry,
    'tributary_canary_rollbacks_total',
    () =>
      new Counter({
        name: 'tributary_canary_rollbacks_total',
        help: "Canaries rolled back by the monitor's canary rule (quality below the champion's by more than the margin beyond sampling error)",
        labelNames: ['model'],
        registers,
      }),
  );
  const lag = metric(
    options.registry,
    'tributary_monitor_consumer_lag',
    () =>
      new Gauge({
        name: 'tributary_monitor_consumer_lag',
        help: 'Records of the partition (predictions or labels) not yet consumed by the monitor',
        labelNames: ['topic', 'partition'],
        registers,
      }),
  );
  const consumedAt = metric(
    options.registry,
    'tributary_monitor_consumed_timestamp_seconds',
    () =>
      new Gauge({
        name: 'tributary_monitor_consumed_timestamp_seconds',
        help: 'When the monitor last handled a batch of the partition (predictions or labels) it holds, or began to hold it, in Unix seconds',
        labelNames: ['topic', 'partition'],
        registers,
      }),
  );
  const deadLettered = deadLetterCounter(options.registry);
  const labelRecords = recordValidator<Label>(LabelSchema);

  /**
   * What a batch's predictions update in the process (drift and estimate windows, score, latency
   * and feature-age histograms, predictions and defaults counters): the counters are added up
   * over the batch and incremented once per series.
   */
  const applyPredictions = (seriesOf: ServedSeries[], predictions: PredictionLogRecord[], windowAt: number[]) => {
    const touched: ServedSeries[] = [];
    const defaultCounts = new BatchCounts<'model' | 'version' | 'feature'>();
    for (let i = 0; i < predictions.length; i++) {
      const series = seriesOf[i]!;
      const p = predictions[i]!;
      const at = windowAt[i]!;
      if (series.served[0] === 0 && series.served[1] === 0) touched.push(series);
      drift.observeIn(series.drift, p.features, p.score, at, p.defaulted);
      board.predictedIn(series.quality, p.score, at);
      series.score.observe(p.score);
      series.served[p.degraded === true ? 1 : 0]++;
      series.latency.observe(p.latency_ms / 1000);
      const { defaulted } = p;
      if (defaulted !== undefined) {
        for (const feature of defaulted) {
          const [m, v, f] = bounded(series.model, series.version, feature);
          defaultCounts.add({ model: m, version: v, feature: f });
        }
      }
      // Counted once per request, with its answering version's record: a shadow reads the very same states.
      const ages = p.variant === 'shadow' ? undefined : p.feature_age_ms;
      if (ages !== undefined) {
        for (const group in ages) {
          const age = ages[group];
          if (age === null || age === undefined) continue;
          ageSeriesOf(series, group).observe(Math.max(0, age) / 1000);
        }
      }
    }
    for (const series of touched) {
      const { model, version, variant } = series;
      if (series.served[0] > 0) served.inc({ model, version, variant, degraded: 'false' }, series.served[0]);
      if (series.served[1] > 0) served.inc({ model, version, variant, degraded: 'true' }, series.served[1]);
      series.served[0] = series.served[1] = 0;
    }
    defaultCounts.addTo(defaults);
    for (const { model, version, feature } of defaultCounts.labelSets()) defaultedOf(model, version).add(feature);
  };

  /** By partition, the last offset of a batch whose dead letters were published. */
  const deadLetteredTo = new Map<string, bigint>();
  /**
   * By partition, the last offset of a batch this process applied in full. Its records may be
   * delivered again (their offsets were not committed yet when the group rebalanced, or the
   * commit failed): counted already, they are skipped.
   */
  const appliedTo = new Map<string, bigint>();
  const lagged = trackConsumerLag(
    { lag, consumedAt },
    { eventLog: options.eventLog, groupId: options.groupId, logger: options.logger, refreshMs: options.lagRefreshMs, clock },
  );
  const subscription: Subscription = await options.eventLog.subscribe({
    groupId: options.groupId,
    topics: [options.topics.predictions, options.topics.labels],
    fromBeginning: true,
    concurrentPartitions: CONCURRENT_PARTITIONS,
    // Fetches of transaction markers only move the lag (a partition that ends with one would stay at 1).
    emptyBatches: true,
    onError: (error) => options.logger.warn({ err: error }, 'monitor batch failed; it will be retried'),
    // The new owner of a partition reports its lag: the value this process last set would stay frozen in the sum.
    onRebalance: () => lagged.forget(),
    eachBatch: async (batch) => {
      // As the batch arrives (its records included): the lag grows while batches fail (the join store is down) and
      // are delivered again. Once applied, what is left after it (below). An empty batch (transaction markers or
      // aborted records only) is handled as it arrives: there is nothing else to do.
      lagged.arrived(batch);
      if (batch.records.length === 0) return;
      const stream = batch.topic === options.topics.predictions ? 'predictions' : 'labels';
      const rejected: OutgoingRecord[] = [];
      /** The offset of each rejected record's source record. */
      const rejectedOffsets: string[] = [];
      const reasons: DeadLetterReason[] = [];
      const partition = `${batch.topic}:${batch.partition}`;
      const last = batch.records.at(-1)!;
      // The log now ends at or before what was applied: the topic was recreated (or truncated) and its offsets
      // started over; the records are new, not delivered again.
      if (batch.highWatermark !== undefined && BigInt(batch.highWatermark) <= (appliedTo.get(partition) ?? -1n)) {
        appliedTo.delete(partition);
        deadLetteredTo.delete(partition);
      }
      const records = recordsAfter(batch.records, appliedTo.get(partition));
      const publishedTo = deadLetteredTo.get(partition);
      const reject = (record: LogRecord, reason: DeadLetterReason, detail: string) => {
        reasons.push(reason);
        // Published already, by this batch delivered before (it failed after its dead letters).
        if (publishedTo !== undefined && BigInt(record.offset) <= publishedTo) return;
        rejected.push(deadLetter(record, reason, detail, options.groupId));
        rejectedOffsets.push(record.offset);
      };
      const offers: Offer[] = [];
      const sides: (WaitingPrediction | WaitingLabel)[] = [];
      // What the batch's predictions do to the windows, histograms and counters is applied only
      // once its offers are stored and its dead letters published: a batch that fails before
      // is delivered again, and would count its records twice. Kept as references to what the
      // records decoded to (the series, the record, its time in the windows), no object per record.
      const observedSeries: ServedSeries[] = [];
      const observed: PredictionLogRecord[] = [];
      const observedAt: number[] = [];
      const labelCounts = [0, 0];
      for (const record of records) {
        if (stream === 'predictions') {
          const decoded = predictionRecords.decode(record.value);
          if (!decoded.ok) {
            reject(record, decoded.reason, decoded.detail);
            continue;
          }
          const p = servedFloats(decoded.value);
          const now = clock();
          if (!(p.predicted_at <= now + MAX_AHEAD_MS)) {
            const detail = `predicted_at ${p.predicted_at} is more than a day ahead of the monitor's clock`;
            reject(record, 'invalid', detail);
            continue;
          }
          const deadline = p.predicted_at + options.joinWindowMs;
          if (!(deadline > now)) {
            reject(record, 'late', lateDetail('predicted_at', p.predicted_at, options.joinWindowMs));
            continue;
          }
          // Seen now: a series a batch waits on is live, so no sweep retires it before the batch applies.
          const series = servedSeriesOf(p.model.name, p.model.version, p.variant);
          series.seenAt = now;
          // The windows go by prediction time, but a clock far ahead on the serving host must not
          // move them past the monitor's own: the records on time would all fall out as late.
          observedSeries.push(series);
          observed.push(p);
          observedAt.push(Math.min(p.predicted_at, now + MAX_SKEW_MS));
          const waiting: WaitingPrediction = {
            model: p.model.name,
            version: p.model.version,
            variant: p.variant,
            score: p.score,
            predicted_at: p.predicted_at,
          };
          if (sliceFields.length > 0) {
            waiting.slices = {};
            for (const field of sliceFields) {
              const value = p.request?.[field];
              // A value too long to be a slice counts as `__other__`: kept as such, not stored whole. So does one that is
              // not well-formed text: two lone surrogates would be one U+FFFD in /metrics, two series of one name.
              if (typeof value === 'number') waiting.slices[field] = value;
              else if (typeof value === 'boolean') waiting.slices[field] = String(value);
              else if (typeof value === 'string')
                waiting.slices[field] = value.length > MAX_SLICE_LENGTH || !isWellFormed(value) ? OTHER_SLICE : value;
            }
          }
          sides.push(waiting);
          offers.push({
            side: 'prediction',
            requestId: p.request_id,
            record: recordId(record),
            // The answering version and each shadow of a request are joined to its label apart.
            unit: series.unit,
            value: JSON.stringify(waiting),
            deadline,
          });
        } else {
          const decoded = labelRecords.decode(record.value);
          if (!decoded.ok) {
            reject(record, decoded.reason, decoded.detail);
            continue;
          }
          // Null for a date-time the schema takes but no Date holds (a leap second, `…23:59:60Z`).
          const at = parseEventTime(decoded.value.ts);
          const now = clock();
          if (at === null) {
            reject(record, 'invalid', `ts ${JSON.stringify(decoded.value.ts)} is not a time the monitor can place (a leap second?)`);
            continue;
          }
          if (!(at <= now + MAX_AHEAD_MS)) {
            const detail = `ts ${JSON.stringify(decoded.value.ts)} is more than a day ahead of the monitor's clock`;
            reject(record, 'invalid', detail);
            continue;
          }
          if (!(at + options.joinWindowMs > now)) {
            reject(record, 'late', lateDetail('ts', decoded.value.ts, options.joinWindowMs));
            continue;
          }
          labelCounts[decoded.value.label]!++;
          const waiting: WaitingLabel = { label: decoded.value.label, at };
          sides.push(waiting);
          offers.push({
            side: 'label',
            requestId: decoded.value.request_id,
            record: recordId(record),
            value: JSON.stringify(waiting),
            // A later label of the request that differs is a correction (the first stays joined).
            label: String(waiting.label),
            deadline: waiting.at + options.joinWindowMs,
          });
        }
      }
      // The dead letters first: should the offers fail, the batch comes again, and its dead
      // letters are not published again (`deadLetteredTo`, moved as each send of them is out:
      // when a later send fails, the batch comes again without those sent; after a restart or a
      // rebalance they may be published again: at least once). Nothing is counted twice.
      if (rejected.length > 0) {
        let sent = 0;
        await publishDeadLetters(options.eventLog, options.topics.deadLetter, rejected, (letters) => {
          sent += letters.length;
          deadLetteredTo.set(partition, BigInt(rejectedOffsets[sent - 1]!));
        });
        deadLetteredTo.set(partition, BigInt(last.offset));
      }
      // Offers are durable before the batch is committed. Should they fail, even after the store
      // applied them (a reply lost with the connection), the batch comes again and each record
      // gets the answer of its first offer: the pairs it joined are observed then.
      const outcomes = await options.joins.offer(offers);
      applyPredictions(observedSeries, observed, observedAt);
      labelCounts.forEach((count, label) => {
        if (count > 0) labels.inc({ label: String(label) }, count);
      });
      for (const reason of reasons) deadLettered.inc({ consumer: options.groupId, reason });
      // `joined` counts pairs: a label that joins a champion's and a shadow's prediction adds 2.
      const outcomeCounts = { joined: 0, waiting: 0, duplicate: 0, corrected: 0, unusable: 0, unreadable: 0 };
      let joinedAgain = 0;
      for (let i = 0; i < outcomes.length; i++) {
        const outcome = outcomes[i]!;
        if (outcome.kind !== 'joined') {
          outcomeCounts[outcome.kind]++;
          continue;
        }
        outcomeCounts.joined += outcome.others.length;
        // Answered again: the record was offered before, by this process (the answer was lost) or
        // by another (stopped since, or of another group), which may have observed the pairs:
        // they are not bandit trials again.
        const first = outcome.again !== true;
        if (!first) joinedAgain += outcome.others.length;
        const side = sides[i]!;
        for (const text of outcome.others) {
          // The other side as stored: one something else wrote there is counted, not joined.
          const other = keptSide(stream === 'predictions' ? 'labels' : 'predictions', text);
          if (other === null) {
            outcomeCounts.joined--;
            outcomeCounts.unreadable++;
          } else if (stream === 'predictions') joined(side as WaitingPrediction, other as WaitingLabel, first);
          else joined(other as WaitingPrediction, side as WaitingLabel, first);
        }
      }
      if (outcomeCounts.unusable + outcomeCounts.unreadable > 0) {
        options.logger.warn(
          { stream, unusable: outcomeCounts.unusable, unreadable: outcomeCounts.unreadable },
          'label join: request keys in the join store that hold something else (another type, or a side it cannot read); those records are not joined',
        );
      }
      for (const outcome of ['joined', 'waiting', 'duplicate', 'corrected', 'unusable', 'unreadable'] as const) {
        if (outcomeCounts[outcome] > 0) joins.inc({ stream, outcome }, outcomeCounts[outcome]);
      }
      if (joinedAgain > 0) joinsAgain.inc({ stream }, joinedAgain);
      const addReward = options.rollouts?.addReward;
      if (addReward) {
        // At most once: a reward not stored is kept for the next batch (one the store may have taken is not); one lost in a crash is not replayed.
        await bandit.flush(addReward).catch((error: unknown) => options.logger.warn({ err: error }, 'bandit rewards not stored yet'));
      }
      consumed.inc({ stream, outcome: 'accepted' }, records.length - reasons.length);
      consumed.inc({ stream, outcome: 'dead_lettered' }, reasons.length);
      appliedTo.set(partition, BigInt(last.offset));
      lagged.handled(batch);
    },
  });
  /** Sweeps what is due and counts it; sweeps never overlap. */
  let sweeping: Promise<void> = Promise.resolve();
  let stopped = false;
  const sweep = () => {
    sweeping = sweeping
      .catch(() => {}) // a failed sweep was reported; the next one runs anyway
      .then(async () => {
        const retired = retire();
        if (retired > 0) options.logger.info({ retired }, 'retired the model/version/variant series idle for longer than every window');
        // Chunks of SWEEP_CHUNK sides until nothing more is due: however many came due since the
        // last sweep (a side is one record's), the index does not grow behind the stream.
        const count = (swept: { predictions: number; labels: number }) => {
          expired.inc({ stream: 'predictions' }, swept.predictions);
          expired.inc({ stream: 'labels' }, swept.labels);
        };
        let swept;
        do {
          try {
            swept = await options.joins.sweep(clock(), SWEEP_CHUNK);
          } catch (error) {
            // What a failed sweep removed is counted all the same: it will not be found again.
            if (error instanceof SweepError) count(error.swept);
            throw error;
          }
          count(swept);
        } while (swept.taken === SWEEP_CHUNK && !stopped);
      });
    return sweeping;
  };
  const sweeper = setInterval(() => {
    sweep().catch((error: unknown) => options.logger.warn({ err: error }, 'label join: sweep failed; it will be retried'));
  }, options.sweepIntervalMs ?? 10_000);
  sweeper.unref();
  const canary = options.rollouts?.canary;
  const canaryIntervalMs = canary?.intervalMs ?? 15_000;
  /** One pass of the canary rule (the timer runs it every `intervalMs`). */
  const checkCanary = async () => {
    if (!canary) return;
    await checkCanaries({
      rule: canary.rule,
      looksPerHour: Math.ceil(3_600_000 / canaryIntervalMs),
      control: canary.control,
      quality: () => board.summaries(clock()).filter((s) => s.window === '1h'),
      logger: options.logger,
      rolledBack: (model) => canaryRollbacks.inc({ model }),
    });
  };
  let checking: Promise<void> = Promise.resolve();
  const canaryTimer = canary
    ? setInterval(() => {
        checking = checking
          .then(checkCanary)
          .catch((error: unknown) => options.logger.warn({ err: error }, 'canary rule: check failed; it will be retried'));
      }, canaryIntervalMs)
    : null;
  canaryTimer?.unref();
  return {
    stop: async () => {
      stopped = true;
      clearInterval(sweeper);
      lagged.stop();
      if (canaryTimer) clearInterval(canaryTimer);
      await checking;
      await sweeping.catch(() => {});
      await subscription.stop();
      await options.joins.close();
      await options.rollouts?.close?.();
    },
    sweep,
    checkCanary,
  };
}
