/**
 * Label-based quality per model, version and variant over sliding windows (1h and 24h by
 * label arrival: what the monitor learned in that time), in fixed memory: each window is a
 * ring of time buckets of the shared QualityAccumulator. The number of series is bounded;
 * beyond it, predictions of new series are counted under `other`.
 */
import { QualityAccumulator, SlidingWindow, type QualitySummary } from '@tributary/shared';

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

interface Series extends SeriesKey {
  windows: { window: QualityWindow; ring: SlidingWindow<QualityAccumulator> }[];
}

export interface QualityBoardOptions {
  /** The model version's decision threshold. */
  thresholdOf(model: string, version: string): number;
  maxSeries: number;
  windows?: QualityWindow[];
}

export class QualityBoard {
  private readonly series = new Map<string, Series>();

  constructor(private readonly options: QualityBoardOptions) {}

  private seriesOf(key: SeriesKey): Series {
    const id = `${key.model}\u0000${key.version}\u0000${key.variant}`;
    let series = this.series.get(id);
    if (series) return series;
    if (this.series.size >= this.options.maxSeries) return this.seriesOf({ model: 'other', version: 'other', variant: 'other' });
    const threshold = key.model === 'other' ? 0.5 : this.options.thresholdOf(key.model, key.version);
    series = {
      ...key,
      windows: (this.options.windows ?? QUALITY_WINDOWS).map((window) => ({
        window,
        ring: new SlidingWindow<QualityAccumulator>(
          { empty: () => new QualityAccumulator({ threshold }), merge: (a, b) => a.merge(b) },
          { bucketMs: window.bucketMs, buckets: window.buckets },
        ),
      })),
    };
    this.series.set(id, series);
    return series;
  }

  observe(key: SeriesKey, score: number, label: 0 | 1, at: number): void {
    for (const { ring } of this.seriesOf(key).windows) ring.at(at)?.add(score, label);
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
