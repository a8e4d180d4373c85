/**
 * Quality per model, version and variant over sliding windows, in fixed memory (rings of
 * time buckets of the shared accumulators):
 * - label-based quality over 1h and 24h by label time (when the label became known: the
 *   monitor gives the later of its `ts` and the prediction's time, at most its clock);
 * - before labels arrive, the confidence-based estimate (CBPE) over 1h and 24h by prediction
 *   time, from the scores alone, reported as estimated;
 * - per slice (a request field such as country or channel, a bounded number of values each)
 *   over 24h, with the disparity of false-positive and false-negative rates between slices.
 * The number of series is bounded; beyond it, new series are counted under `other`. The
 * monitor retires the series nothing has reached for longer than every window (`retain`).
 */
import {
  CbpeAccumulator,
  MISSING_SLICE,
  QualityAccumulator,
  rateDisparity,
  SliceQuality,
  SlidingWindow,
  type ConfusionCounts,
  type EstimatedPerformance,
  type FairnessView,
  type QualitySummary,
} from '@tributary/shared';

export interface QualityWindow {
  name: string;
  bucketMs: number;
  buckets: number;
}

export const QUALITY_WINDOWS: QualityWindow[] = [
  { name: '1h', bucketMs: 60_000, buckets: 60 },
  { name: '24h', bucketMs: 3_600_000, buckets: 24 },
];

export interface SeriesKey {
  model: string;
  version: string;
  variant: string;
}

/** One series' windows (what `seriesFor` hands out, to update with `predictedIn`). */
export type QualitySeries = Series;

interface Series extends SeriesKey {
  windows: { window: QualityWindow; ring: SlidingWindow<QualityAccumulator> }[];
  estimates: { window: QualityWindow; ring: SlidingWindow<CbpeAccumulator> }[];
  slices: Map<string, SlidingWindow<SliceQuality>>;
}

export interface QualityBoardOptions {
  /** The model version's decision threshold (asked for each new bucket of a series' windows). */
  thresholdOf(model: string, version: string): number;
  maxSeries: number;
  windows?: QualityWindow[];
  /** Request fields whose values are slices (e.g. country, channel). */
  sliceFields?: string[];
  /** Values per slice field at most; beyond, `__other__`. */
  maxSlices?: number;
  /**
   * How far ahead of the clock the board is read by a prediction time may be (the estimates
   * go by prediction time; the monitor caps it at its allowed skew). Default 0.
   */
  aheadMs?: number;
}

/** The window of the slice view. */
const SLICE_WINDOW: QualityWindow = { name: '24h', bucketMs: 3_600_000, buckets: 24 };

export interface SliceView extends SeriesKey {
  field: string;
  slices: Record<string, ConfusionCounts>;
  fairness: FairnessView;
}

const OTHER_ID = 'other\u0000other\u0000other';

export class QualityBoard {
  private readonly series = new Map<string, Series>();

  constructor(private readonly options: QualityBoardOptions) {}

  private seriesOf(key: SeriesKey): Series {
    const id = `${key.model}\u0000${key.version}\u0000${key.variant}`;
    let series = this.series.get(id);
    if (series) return series;
    // Beyond the bound, every new series is counted under `other` (which is not counted against it).
    const other = key.model === 'other' && key.version === 'other' && key.variant === 'other';
    const own = this.series.size - (this.series.has(OTHER_ID) ? 1 : 0);
    if (own >= this.options.maxSeries && !other) return this.seriesOf({ model: 'other', version: 'other', variant: 'other' });
    // Asked for each new bucket, not once: a version served before its manifest could be read
    // starts at the default, and its buckets take the manifest's threshold once it is read.
    const threshold = () => (key.model === 'other' ? 0.5 : this.options.thresholdOf(key.model, key.version));
    const windows = this.options.windows ?? QUALITY_WINDOWS;
    const maxSlices = this.options.maxSlices ?? 20;
    series = {
      ...key,
      windows: windows.map((window) => ({
        window,
        ring: new SlidingWindow<QualityAccumulator>(
          { empty: () => new QualityAccumulator({ threshold: threshold() }), merge: (a, b) => a.merge(b) },
          { bucketMs: window.bucketMs, buckets: window.buckets },
        ),
      })),
      estimates: windows.map((window) => ({
        window,
        ring: new SlidingWindow<CbpeAccumulator>(
          { empty: () => new CbpeAccumulator(threshold()), merge: (a, b) => a.merge(b) },
          { bucketMs: window.bucketMs, buckets: window.buckets, aheadMs: this.options.aheadMs ?? 0 },
        ),
      })),
      slices: new Map(
        (this.options.sliceFields ?? []).map((field) => {
          // The slices kept by name are decided once for the series' field, not per hourly bucket.
          const names = new Set<string>();
          const ring = new SlidingWindow<SliceQuality>(
            { empty: () => new SliceQuality(threshold(), maxSlices, names), merge: (a, b) => a.merge(b) },
            { bucketMs: SLICE_WINDOW.bucketMs, buckets: SLICE_WINDOW.buckets },
          );
          return [field, ring] as const;
        }),
      ),
    };
    this.series.set(id, series);
    return series;
  }

  /** A labelled prediction: its score, its label, its request fields (for slices), when the label arrived. */
  observe(key: SeriesKey, score: number, label: 0 | 1, at: number, request: Record<string, unknown> = {}): void {
    this.observeIn(this.seriesOf(key), score, label, at, request);
  }

  /**
   * The series a key's records go to: its own, or `other` beyond the bound. The answer for a
   * key stays the same until `retain` drops the series, so a caller may keep it until then.
   */
  seriesFor(key: SeriesKey): QualitySeries {
    return this.seriesOf(key);
  }

  /** A labelled prediction, on a series from `seriesFor`. */
  observeIn(series: QualitySeries, score: number, label: 0 | 1, at: number, request: Record<string, unknown> = {}): void {
    for (const { ring } of series.windows) ring.at(at)?.add(score, label);
    for (const [field, ring] of series.slices) {
      const value = request[field];
      const slice = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : MISSING_SLICE;
      ring.at(at)?.add(slice, score, label);
    }
  }

  /** Drops the series `keep` refuses (their places under the bound free up). */
  retain(keep: (series: QualitySeries) => boolean): void {
    for (const [id, series] of this.series) if (!keep(series)) this.series.delete(id);
  }

  /** A prediction, labelled or not yet: counted in the confidence-based estimate at its prediction time. */
  predicted(key: SeriesKey, score: number, at: number): void {
    this.predictedIn(this.seriesOf(key), score, at);
  }

  /** `predicted` on a series from `seriesFor`. */
  predictedIn(series: QualitySeries, score: number, at: number): void {
    for (const { ring } of series.estimates) ring.at(at)?.add(score);
  }

  /** Every series' estimated quality (CBPE) in every window ending at `now`. */
  estimates(now: number): (SeriesKey & { window: string; estimate: EstimatedPerformance })[] {
    const out: (SeriesKey & { window: string; estimate: EstimatedPerformance })[] = [];
    for (const series of this.series.values()) {
      for (const { window, ring } of series.estimates) {
        out.push({
          model: series.model,
          version: series.version,
          variant: series.variant,
          window: window.name,
          estimate: ring.read(now).estimate(),
        });
      }
    }
    return out;
  }

  /** Every series' quality per slice over the last 24h, with the fairness view (FPR of the slices with `minCount` negatives, FNR of those with `minCount` positives). */
  sliceViews(now: number, minCount = 30): SliceView[] {
    const out: SliceView[] = [];
    for (const series of this.series.values()) {
      for (const [field, ring] of series.slices) {
        const slices = ring.read(now).counts();
        out.push({
          model: series.model,
          version: series.version,
          variant: series.variant,
          field,
          slices,
          fairness: rateDisparity(slices, minCount),
        });
      }
    }
    return out;
  }

  /** Every series' quality in every window ending at `now`. */
  summaries(now: number): (SeriesKey & { window: string; quality: QualitySummary })[] {
    const out: (SeriesKey & { window: string; quality: QualitySummary })[] = [];
    for (const series of this.series.values()) {
      for (const { window, ring } of series.windows) {
        out.push({
          model: series.model,
          version: series.version,
          variant: series.variant,
          window: window.name,
          quality: ring.read(now).summary(),
        });
      }
    }
    return out;
  }
}
