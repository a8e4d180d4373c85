import { describe, expect, it } from 'vitest';
import { buildProfile, type ReferenceProfile } from '@tributary/shared';
import { DriftBoard } from '../src/drift.js';
import { QualityBoard } from '../src/quality.js';

const NOW = 1_800_000_000_000;
const profile: ReferenceProfile = buildProfile(
  Array.from({ length: 200 }, (_, i) => ({ amount: i, score: (i % 100) / 100 })),
  [
    { name: 'amount', kind: 'numeric' },
    { name: 'score', kind: 'numeric' },
  ],
);

describe('DriftBoard', () => {
  it('leaves a series whose report fails out of the reports, and reports the others', () => {
    const amount = profile.features.amount!;
    const broken = {
      ...profile,
      features: { ...profile.features, amount: { ...amount, counts: amount.counts.map((c, i) => (i === 1 ? null : c)) } },
    };
    const failed: string[] = [];
    const board = new DriftBoard({
      profileOf: (_model, version) => (version === '1' ? (broken as unknown as ReferenceProfile) : profile),
      maxSeries: 3,
      minRows: 1,
      onReportError: (series, error) => failed.push(`${series.model}/${series.version}/${series.variant}: ${String(error)}`),
    });
    board.observe('m', '1', 'champion', { amount: 5 }, 0.3, NOW);
    board.observe('m', '2', 'champion', { amount: 5 }, 0.3, NOW);
    expect(board.reports(NOW).map((r) => [r.version, r.rows])).toEqual([['2', 1]]);
    expect(failed).toEqual([expect.stringMatching(/^m\/1\/champion: /)]);
  });

  it('hands out the same window for a version and variant each time, counts on it as observe does, and remembers no series beyond its bound', () => {
    const asked: string[] = [];
    const board = new DriftBoard({
      profileOf: (model, version) => {
        asked.push(`${model}/${version}`);
        return profile;
      },
      maxSeries: 3,
      minRows: 1,
    });
    const kept = board.seriesFor('m', '1', 'champion');
    expect(board.seriesFor('m', '1', 'champion')).toBe(kept);
    board.observeIn(kept, { amount: 5 }, 0.3, NOW);
    board.observe('m', '1', 'champion', { amount: 7 }, 0.4, NOW);
    // The same version as a canary is a series of its own.
    board.observe('m', '1', 'canary', { amount: 7 }, 0.4, NOW);
    expect(board.reports(NOW).map((r) => [r.version, r.variant, r.rows])).toEqual([
      ['1', 'champion', 2],
      ['1', 'canary', 1],
    ]);
    // A stream of odd versions: beyond the bound none has a window, and none is remembered.
    for (let v = 2; v < 1_000; v++) board.observe('m', String(v), 'champion', { amount: 1 }, 0.5, NOW);
    expect(board.seriesFor('m', '999', 'champion')).toBeNull();
    expect(asked).toEqual(['m/1', 'm/1', 'm/2']);
    expect((board as unknown as { series: Map<string, unknown> }).series.size).toBe(3);
  });

  it('drops the series retain refuses, names with any characters included, and their places go to new ones', () => {
    const board = new DriftBoard({ profileOf: () => profile, maxSeries: 2, minRows: 1 });
    const odd = 'm\u0000"x';
    board.observe(odd, '1', 'champion', { amount: 5 }, 0.3, NOW);
    board.observe('m', '2', 'shadow', { amount: 5 }, 0.3, NOW);
    expect(board.seriesFor('m', '3', 'champion')).toBeNull();
    const asked: string[] = [];
    board.retain((model, version, variant) => (asked.push(`${model}/${version}/${variant}`), model === 'm'));
    expect(asked).toEqual([`${odd}/1/champion`, 'm/2/shadow']);
    expect(board.reports(NOW).map((r) => [r.version, r.variant])).toEqual([['2', 'shadow']]);
    expect(board.seriesFor('m', '3', 'champion')).not.toBeNull();
  });

  it('asks again for the profile of a version that had none, and starts its window once it has one (its manifest read late)', () => {
    let found: ReferenceProfile | null = null;
    const board = new DriftBoard({ profileOf: () => found, maxSeries: 1, minRows: 1 });
    const kept = board.seriesFor('m', '1', 'champion');
    board.observeIn(kept, { amount: 5 }, 0.3, NOW);
    expect(board.reports(NOW)).toEqual([]);
    found = profile;
    board.observeIn(kept, { amount: 7 }, 0.4, NOW);
    expect(board.seriesFor('m', '1', 'champion')).toBe(kept);
    expect(board.reports(NOW).map((r) => [r.version, r.rows])).toEqual([['1', 1]]);
  });
});

describe('DriftBoard and QualityBoard: predictions stamped ahead of the clock', () => {
  it('keep the hour read at the clock whole when a prediction is stamped up to aheadMs later', () => {
    const minute = 60_000;
    const start = NOW - (NOW % minute);
    const now = start + 59 * minute + 50_000; // 59:50
    const drift = new DriftBoard({ profileOf: () => profile, maxSeries: 1, minRows: 1, aheadMs: minute });
    const quality = new QualityBoard({ thresholdOf: () => 0.5, maxSeries: 1, aheadMs: minute });
    const key = { model: 'm', version: '1', variant: 'champion' };
    // One prediction a minute from -1 (the hour back from 59:50 starts in it) to 59, then one 20 s ahead.
    const at = [...Array.from({ length: 61 }, (_, i) => start + (i - 1) * minute + 1000), now + 20_000];
    for (const t of at) {
      drift.observe('m', '1', 'champion', { amount: 5 }, 0.3, t);
      quality.predicted(key, 0.3, t);
    }
    expect(drift.reports(now).map((r) => r.rows)).toEqual([61]);
    expect(quality.estimates(now).find((e) => e.window === '1h')!.estimate.count).toBe(61);
    expect(drift.reports(now + 20_000).map((r) => r.rows)).toEqual([61]); // minutes 0..60
  });
});

describe('QualityBoard', () => {
  it('keeps the same slices by name in every hour of the 24h slice window (the bound decided once per series)', () => {
    const board = new QualityBoard({ thresholdOf: () => 0.5, maxSeries: 1, sliceFields: ['country'], maxSlices: 1 });
    const key = { model: 'm', version: '1', variant: 'champion' };
    const HOUR = 3_600_000;
    // Hour 1: FR first, then DE. Hour 2: DE first, then FR. Scores 0.9 on label 0: false positives.
    board.observe(key, 0.9, 0, NOW - HOUR, { country: 'FR' });
    board.observe(key, 0.9, 0, NOW - HOUR, { country: 'DE' });
    board.observe(key, 0.9, 0, NOW, { country: 'DE' });
    board.observe(key, 0.9, 0, NOW, { country: 'FR' });
    const [view] = board.sliceViews(NOW, 1);
    // FR, the first slice of the series, is FR in both hours; DE is other in both.
    expect(view!.slices).toEqual({
      FR: { tp: 0, fp: 2, tn: 0, fn: 0 },
      __other__: { tp: 0, fp: 2, tn: 0, fn: 0 },
    });
  });

  it('keeps the rows of the slices beyond the bound and of requests without the field, but compares neither in the fairness view', () => {
    const board = new QualityBoard({ thresholdOf: () => 0.5, maxSeries: 1, sliceFields: ['country'], maxSlices: 2 });
    const key = { model: 'm', version: '1', variant: 'champion' };
    // False-positive rates: FR 1/4, DE 2/4, beyond the bound (IT) and without a country 4/4 and 0/4.
    for (const [country, flagged] of [
      ['FR', 1],
      ['DE', 2],
      ['IT', 4],
      [undefined, 0],
    ] as const) {
      for (let i = 0; i < 4; i++) board.observe(key, i < flagged ? 0.9 : 0.1, 0, NOW, country === undefined ? {} : { country });
    }
    const [view] = board.sliceViews(NOW, 1);
    expect(Object.keys(view!.slices).sort()).toEqual(['DE', 'FR', '__missing__', '__other__']);
    expect(view!.fairness.falsePositiveRate).toMatchObject({ min: { slice: 'FR', rate: 0.25 }, max: { slice: 'DE', rate: 0.5 } });
    expect(view!.fairness.falsePositiveRate.ratio).toBe(2);
  });

  it('hands out the same series for a key, the other series beyond its bound, and counts on them as predicted does', () => {
    const board = new QualityBoard({ thresholdOf: () => 0.5, maxSeries: 1 });
    const key = { model: 'm', version: '1', variant: 'champion' };
    const kept = board.seriesFor(key);
    expect(board.seriesFor({ ...key })).toBe(kept);
    const beyond = board.seriesFor({ ...key, version: '2' });
    expect(beyond).not.toBe(kept);
    expect(board.seriesFor({ ...key, version: '3' })).toBe(beyond);
    board.predictedIn(kept, 0.9, NOW);
    board.predicted(key, 0.2, NOW);
    board.predictedIn(beyond, 0.7, NOW);
    const counts = board.estimates(NOW).map((e) => [e.model, e.version, e.window, e.estimate.count]);
    expect(counts).toEqual([
      ['m', '1', '1h', 2],
      ['m', '1', '24h', 2],
      ['other', 'other', '1h', 1],
      ['other', 'other', '24h', 1],
    ]);
  });

  it("takes the version's threshold for each new bucket: one read late (the manifest was not in place) holds from then on", () => {
    let threshold = 0.5;
    const board = new QualityBoard({ thresholdOf: () => threshold, maxSeries: 1, sliceFields: ['country'] });
    const key = { model: 'm', version: '1', variant: 'champion' };
    const HOUR = 3_600_000;
    board.observe(key, 0.4, 1, NOW, { country: 'FR' });
    board.predicted(key, 0.4, NOW);
    threshold = 0.3;
    // A bucket already made keeps its threshold (its counts are of one threshold); the next ones take the new one.
    board.observe(key, 0.4, 1, NOW, { country: 'FR' });
    board.observe(key, 0.4, 1, NOW + HOUR, { country: 'FR' });
    board.predicted(key, 0.4, NOW + HOUR);
    const day = board.summaries(NOW + HOUR).find((s) => s.window === '24h')!;
    expect(day.quality.confusion).toEqual({ tp: 1, fp: 0, tn: 0, fn: 2 });
    const estimate = board.estimates(NOW + HOUR).find((s) => s.window === '24h')!.estimate;
    expect(estimate.confusion.tp + estimate.confusion.fp).toBeCloseTo(1, 9);
    expect(board.sliceViews(NOW + HOUR, 1)[0]!.slices).toEqual({ FR: { tp: 1, fp: 0, tn: 0, fn: 2 } });
  });

  it('drops the series retain refuses, and their places go to new keys', () => {
    const board = new QualityBoard({ thresholdOf: () => 0.5, maxSeries: 1 });
    const key = { model: 'm', version: '1', variant: 'champion' };
    const first = board.seriesFor(key);
    board.observeIn(first, 0.9, 1, NOW);
    expect(board.seriesFor({ ...key, version: '2' }).model).toBe('other');
    board.retain((series) => series !== first && series.model !== 'other');
    expect(board.summaries(NOW)).toEqual([]);
    const second = board.seriesFor({ ...key, version: '2' });
    expect([second.model, second.version]).toEqual(['m', '2']);
    expect(board.seriesFor(key)).not.toBe(first);
  });
});
