/**
 * Drift of the live inputs and scores of each model version, per variant (champion, canary,
 * shadow, A/B arm), against the reference profile in the version's manifest: the served feature vectors (and scores) of the prediction log are counted
 * on the profile's bins in a sliding window (1h by prediction time, one-minute buckets:
 * fixed memory), and compared on demand (at scrape) with the profile's shared tests: PSI,
 * Jensen-Shannon, KS on the bins, chi-square for categorical features, Bonferroni-corrected
 * over the features; the score is tested on its own, as `monitor compare` does.
 */
import {
  compareToProfile,
  emptyWindow,
  mergeWindows,
  observeRow,
  SlidingWindow,
  type DriftReport,
  type ProfileWindow,
  type ReferenceProfile,
} from '@tributary/shared';

/** The name the score has among a profile's features. */
const SCORE = 'score';

/** The features' drift, corrected as one family, and the score's beside it, tested on its own. */
function reportOf(profile: ReferenceProfile, window: ProfileWindow): DriftReport {
  const names = Object.keys(profile.features);
  if (!names.includes(SCORE)) return compareToProfile(profile, window);
  const features = compareToProfile(profile, window, { features: names.filter((name) => name !== SCORE) });
  const score = compareToProfile(profile, window, { features: [SCORE] });
  features.features[SCORE] = score.features[SCORE]!;
  return { ...features, drifted: [...features.drifted, ...score.drifted] };
}

export interface DriftBoardOptions {
  /** A version's reference profile; asked again while it is null (its manifest may not be readable yet). */
  profileOf(model: string, version: string): ReferenceProfile | null;
  maxSeries: number;
  bucketMs?: number;
  buckets?: number;
  /**
   * How far ahead of the clock the board is read by a prediction time may be (the monitor caps
   * it at its allowed skew). Default 0.
   */
  aheadMs?: number;
  /** Rows a window needs before its drift is reported (tests on a handful of rows say nothing). */
  minRows?: number;
  /** A series whose report failed (it is left out of the scrape; the others are reported). */
  onReportError?(series: { model: string; version: string; variant: string }, error: unknown): void;
}

/** A version in one variant under the bound (what `seriesFor` hands out); null beyond the bound. */
export type DriftSeries = Series;

interface Series {
  model: string;
  version: string;
  variant: string;
  /** Its drift window, made once the version has a profile. */
  window: ProfiledWindow | null;
}

interface ProfiledWindow {
  profile: ReferenceProfile;
  ring: SlidingWindow<ProfileWindow>;
}

const NO_FEATURES: Readonly<Record<string, unknown>> = Object.freeze({});

export class DriftBoard {
  private readonly series = new Map<string, Series>();

  constructor(private readonly options: DriftBoardOptions) {}

  private seriesOf(model: string, version: string, variant: string): Series | null {
    const id = JSON.stringify([model, version, variant]);
    let series = this.series.get(id);
    if (series !== undefined) return series;
    // Versions beyond the bound are not remembered (a stream of odd versions must not grow the map).
    if (this.series.size >= this.options.maxSeries) return null;
    series = { model, version, variant, window: null };
    this.series.set(id, series);
    return series;
  }

  /** A series' window; while its version has no profile, the profile is asked for again. */
  private windowOf(series: Series): ProfiledWindow | null {
    if (series.window !== null) return series.window;
    const profile = this.options.profileOf(series.model, series.version);
    if (profile === null) return null;
    return (series.window = {
      profile,
      ring: new SlidingWindow<ProfileWindow>(
        { empty: () => emptyWindow(profile), merge: mergeWindows },
        { bucketMs: this.options.bucketMs ?? 60_000, buckets: this.options.buckets ?? 60, aheadMs: this.options.aheadMs ?? 0 },
      ),
    });
  }

  /** The series a version's predictions in a variant are counted in (null: beyond the bound); the answer stays the same until `retain` drops it. */
  seriesFor(model: string, version: string, variant: string): DriftSeries | null {
    return this.seriesOf(model, version, variant);
  }

  /** Whether a version in a variant has its place under the bound (with a window or waiting for a profile). */
  remembers(model: string, version: string, variant: string): boolean {
    return this.series.has(JSON.stringify([model, version, variant]));
  }

  /** Drops the series `keep` refuses (their places under the bound free up). */
  retain(keep: (model: string, version: string, variant: string) => boolean): void {
    for (const id of this.series.keys()) {
      const [model, version, variant] = JSON.parse(id) as [string, string, string];
      if (!keep(model, version, variant)) this.series.delete(id);
    }
  }

  /**
   * Counts one served prediction at its prediction time: its feature vector and its score
   * (as the feature `score`, over a feature of that name in the vector), and which of its
   * features were served by default (the missing rate).
   */
  observe(
    model: string,
    version: string,
    variant: string,
    features: Readonly<Record<string, unknown>> | undefined,
    score: number,
    at: number,
    defaulted?: readonly string[],
  ): void {
    this.observeIn(this.seriesOf(model, version, variant), features, score, at, defaulted);
  }

  /** `observe` on a series from `seriesFor`. */
  observeIn(
    series: DriftSeries | null,
    features: Readonly<Record<string, unknown>> | undefined,
    score: number,
    at: number,
    defaulted?: readonly string[],
  ): void {
    const window = series === null ? null : this.windowOf(series);
    const bucket = window?.ring.at(at);
    if (window && bucket) observeRow(window.profile, bucket, features ?? NO_FEATURES, { score }, defaulted);
  }

  /** Each series' drift report over the window ending at `now` (versions with a profile and enough rows; one that fails is left out). */
  reports(now: number): { model: string; version: string; variant: string; rows: number; report: DriftReport }[] {
    const out: { model: string; version: string; variant: string; rows: number; report: DriftReport }[] = [];
    for (const series of this.series.values()) {
      if (series.window === null) continue;
      const { profile, ring } = series.window;
      const window = ring.read(now);
      if (window.rows < (this.options.minRows ?? 100)) continue;
      const { model, version, variant } = series;
      let report: DriftReport;
      try {
        report = reportOf(profile, window);
      } catch (error) {
        this.options.onReportError?.({ model, version, variant }, error);
        continue;
      }
      out.push({ model, version, variant, rows: window.rows, report });
    }
    return out;
  }
}
