import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  binIndex,
  buildProfile,
  categoricalProfile,
  inferFeatureKind,
  numericProfile,
  OTHER_CATEGORY,
  scoreFeature,
  type ReferenceProfile,
  type Row,
} from '../../src/monitoring/profile.js';
import { emptyWindow, mergeWindows, observeRow } from '../../src/monitoring/window.js';
import { compareToProfile, ksTestAgainstProfile } from '../../src/monitoring/profile-drift.js';
import { ksTest } from '../../src/monitoring/drift.js';

describe('numericProfile', () => {
  it('puts bin edges at the reference quantiles and counts missing values apart', () => {
    // 1..10, quartiles with linear interpolation (numpy's default): h = 9q -> 3.25, 5.5, 7.75.
    const profile = numericProfile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, null, NaN, 'x', undefined], { bins: 4, maxQuantiles: 4 });
    expect(profile.edges).toEqual([3.25, 5.5, 7.75]);
    // (-inf, 3.25): 1 2 3 ; [3.25, 5.5): 4 5 ; [5.5, 7.75): 6 7 ; [7.75, inf): 8 9 10
    expect(profile.counts).toEqual([3, 2, 2, 3]);
    expect(profile.count).toBe(10);
    expect(profile.missing).toBe(4);
    // Four evenly spaced order statistics: ranks round(9 i / 3) = 0, 3, 6, 9.
    expect(profile.quantiles).toEqual([1, 4, 7, 10]);
  });

  it('collapses tied quantiles into one edge', () => {
    // 0 x 8, then 1..6 (14 values): h = 13q = 3.25, 6.5, 9.75 -> quartiles 0, 0, 2 + 0.75 (3 - 2) = 2.75.
    const profile = numericProfile([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6], { bins: 4 });
    expect(profile.edges).toEqual([0, 2.75]);
    expect(profile.counts).toEqual([0, 10, 4]);
  });

  it('gives each value its own bin when there are no more distinct values than bins', () => {
    const profile = numericProfile([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], { bins: 4 });
    expect(profile.edges).toEqual([1, 2]);
    expect(profile.counts).toEqual([8, 1, 1]);
  });

  it('keeps the whole sorted sample as quantiles when it is small', () => {
    expect(numericProfile([3, 1, 2]).quantiles).toEqual([1, 2, 3]);
  });

  it('bins with a left-closed rule', () => {
    expect([-1, 0, 0.5, 1, 2, 3].map((x) => binIndex([0, 1, 2], x))).toEqual([0, 1, 1, 2, 3, 3]);
  });
});

describe('edges of a feature besides its quantile edges', () => {
  it('adds given edges and the values of given quantiles, where distinct, and counts on all of them', () => {
    // 1..10 in quartiles: 3.25, 5.5, 7.75; 5.5 and q 0.75 are edges already; q 0.95 is 9.55 (h = 8.55).
    const profile = numericProfile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { bins: 4 }, { edges: [5.5, 9], quantiles: [0.95, 0.75] });
    expect(profile.edges).toEqual([3.25, 5.5, 7.75, 9, expect.closeTo(9.55, 12)]);
    expect(profile.counts).toEqual([3, 2, 2, 1, 1, 1]);
  });

  it('adds the given edges to a profile of one bin per value, and to an empty one', () => {
    expect(numericProfile([0, 0, 0, 1, 1], { bins: 4 }, { edges: [0.5] }).edges).toEqual([0.5, 1]);
    const empty = numericProfile([null], {}, { edges: [0.5], quantiles: [0.99] });
    expect([empty.edges, empty.counts]).toEqual([[0.5], [0, 0]]);
  });

  it('refuses an edge that is not a finite number and a quantile outside (0, 1)', () => {
    expect(() => numericProfile([1, 2], {}, { edges: [NaN] })).toThrow(/edges must be finite numbers, got NaN/);
    expect(() => numericProfile([1, 2], {}, { quantiles: [1] })).toThrow(/quantiles must be in \(0, 1\), got 1/);
  });
});

describe('the score profile', () => {
  // A rare positive class: 2,700 scores below 0.0012, 239 between 0.002 and 0.45, 61 from 0.5 up.
  // Every decile edge is at most 0.00128, so deciles alone put 0.00128 to 1 in one bin.
  const scores = [
    ...Array.from({ length: 2700 }, (_, i) => ((i + 1) / 2700) * 1.2e-3),
    ...Array.from({ length: 239 }, (_, i) => 0.002 + (i * 0.45) / 239),
    ...Array.from({ length: 61 }, (_, i) => 0.5 + (i * 0.49) / 61),
  ];
  // Every score at or above the threshold moves down to 0.05: none crosses it any more.
  const moved = scores.map((s) => (s >= 0.5 ? 0.05 : s));
  const driftOf = (spec: Parameters<typeof buildProfile>[1][number]) => {
    const profile = buildProfile(
      scores.map((score) => ({ score })),
      [spec],
    );
    const window = emptyWindow(profile);
    for (const score of moved) observeRow(profile, window, { score });
    return { edges: (profile.features.score as { edges: number[] }).edges, drift: compareToProfile(profile, window).features.score! };
  };

  it('has edges at the threshold and the upper quantiles, so a move out of the decision region shows', () => {
    const deciles = driftOf({ name: 'score', kind: 'numeric' });
    expect(Math.max(...deciles.edges)).toBeLessThan(0.0013);
    // On the deciles alone the two samples have the same counts.
    expect([deciles.drift.psi, deciles.drift.jensenShannon, deciles.drift.test.statistic]).toEqual([0, 0, 0]);

    const withTail = driftOf(scoreFeature('score', 0.5));
    expect(withTail.edges.slice(-3)).toEqual([0.5, expect.closeTo(0.741, 3), expect.closeTo(0.958, 3)]);
    // Binned KS: the CDFs differ by the 61 scores that left [0.5, 1), 61 / 3000.
    expect(withTail.drift.test).toMatchObject({ name: 'ks-binned', statistic: expect.closeTo(61 / 3000, 12) });
    // PSI: the three emptied bins (30, 27 and 4 of 3,000) against epsilon, and the bin that took them.
    expect(withTail.drift.psi).toBeGreaterThan(0.09);
    expect(withTail.drift.jensenShannon).toBeGreaterThan(0.01);
  });
});

describe('categoricalProfile', () => {
  it('keeps the most frequent categories and gathers the rest in other', () => {
    const profile = categoricalProfile(['a', 'b', 'a', 'c', 'a', 'b', 'd', null, ''], { maxCategories: 2 });
    expect(profile).toEqual({ kind: 'categorical', categories: ['a', 'b'], counts: [3, 2, 2], count: 7, missing: 2 });
  });

  it('does not depend on row order when counts tie', () => {
    expect(categoricalProfile(['y', 'x']).categories).toEqual(['x', 'y']);
    expect(categoricalProfile([1, 2, 2]).categories).toEqual(['2', '1']);
  });
});

describe('buildProfile and inferFeatureKind', () => {
  it('profiles each listed feature and is plain JSON', () => {
    const rows: Row[] = [
      { amount: 10, country: 'FR' },
      { amount: 20, country: 'DE' },
      { amount: null, country: 'FR' },
    ];
    expect(inferFeatureKind(rows, 'amount')).toBe('numeric');
    expect(inferFeatureKind(rows, 'country')).toBe('categorical');
    expect(inferFeatureKind(rows, 'absent')).toBe('categorical');
    const profile = buildProfile(rows, [
      { name: 'amount', kind: 'numeric' },
      { name: 'country', kind: 'categorical' },
    ]);
    expect(profile.rows).toBe(3);
    expect(JSON.parse(JSON.stringify(profile))).toEqual(profile);
    expect(() =>
      buildProfile(rows, [
        { name: 'amount', kind: 'numeric' },
        { name: 'amount', kind: 'numeric' },
      ]),
    ).toThrow(/listed twice/);
  });
});

const featureSpecs = [
  { name: 'x', kind: 'numeric' as const },
  { name: 'c', kind: 'categorical' as const },
];
const rowArbitrary = fc.record({
  x: fc.oneof(fc.double({ min: -100, max: 100, noNaN: true }), fc.constant(null)),
  c: fc.oneof(fc.constantFrom('a', 'b', 'c', 'new'), fc.constant(undefined)),
});

describe('ProfileWindow', () => {
  const reference = buildProfile(
    [
      { x: 1, c: 'a' },
      { x: 2, c: 'b' },
      { x: 3, c: 'a' },
      { x: 4, c: 'c' },
    ],
    featureSpecs,
    { bins: 2, maxCategories: 2 },
  );

  it('counts rows on the reference bins; unseen categories go to other', () => {
    // Edge at the median 2.5; categories a, b, then other (c).
    expect(reference.features.x).toMatchObject({ edges: [2.5], counts: [2, 2] });
    expect(reference.features.c).toMatchObject({ categories: ['a', 'b'], counts: [2, 1, 1] });
    const window = emptyWindow(reference);
    for (const row of [{ x: 0, c: 'zzz' }, { x: 2.5, c: 'b' }, { x: 'oops', c: null }, {}]) observeRow(reference, window, row);
    expect(window.rows).toBe(4);
    expect(window.features.x).toEqual({ counts: [1, 1], missing: 2, defaulted: 0 });
    expect(window.features.c).toEqual({ counts: [0, 1, 1], missing: 2, defaulted: 0 });
    expect(OTHER_CATEGORY).toBe('__other__');
  });

  it('counts a value served as its default on its bin and once as defaulted; names not in the profile and missing values are ignored', () => {
    const window = emptyWindow(reference);
    observeRow(reference, window, { x: 0, c: 'a' }, undefined, ['x', 'toString', '__proto__', 'absent']);
    observeRow(reference, window, { x: 3, c: 'a' }, undefined, ['x', 'c']);
    observeRow(reference, window, { x: 4, c: 'b' });
    // Named twice, and x named without a value: c counts once, x not (it is missing).
    observeRow(reference, window, { c: 'b' }, undefined, ['x', 'x', 'c', 'c']);
    expect(window.features.x).toEqual({ counts: [1, 2], missing: 1, defaulted: 2 });
    expect(window.features.c).toEqual({ counts: [2, 2, 0], missing: 0, defaulted: 2 });
    // Missing where served: 3 of 4 rows for x (1 without a value, 2 defaulted), 2 of 4 for c.
    const report = compareToProfile(reference, mergeWindows(window, emptyWindow(reference)));
    expect(report.features.x!.missingRate).toEqual({ reference: 0, current: 3 / 4 });
    expect(report.features.c!.missingRate).toEqual({ reference: 0, current: 2 / 4 });
  });

  it('counting a row with overrides equals counting the row with the overrides spread over it', () => {
    const overridesArbitrary = fc.record(
      { x: fc.oneof(fc.double({ min: -100, max: 100, noNaN: true }), fc.constant(null)), c: fc.constantFrom('a', 'b', 'new', undefined) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(rowArbitrary, overridesArbitrary), { maxLength: 40 }), (rows) => {
        const spread = emptyWindow(reference);
        const overridden = emptyWindow(reference);
        for (const [row, overrides] of rows) {
          observeRow(reference, spread, { ...row, ...overrides });
          observeRow(reference, overridden, row, overrides);
        }
        expect(overridden).toEqual(spread);
      }),
    );
    // Only own properties override: a feature named after an Object.prototype member is read from the row.
    const odd: ReferenceProfile = {
      version: 1,
      rows: 2,
      features: { toString: { kind: 'numeric' as const, edges: [1.5], counts: [1, 1], count: 2, missing: 0, quantiles: [1, 2] } },
    };
    const window = emptyWindow(odd);
    observeRow(odd, window, { toString: 1 }, { score: 0.5 });
    expect(window.features.toString).toEqual({ counts: [1, 0], missing: 0, defaulted: 0 });
  });

  it('merging windows equals counting all rows in one (fixed memory: one count per bin)', () => {
    fc.assert(
      fc.property(fc.array(rowArbitrary, { maxLength: 80 }), fc.nat(), (rows, cut) => {
        const split = rows.length === 0 ? 0 : cut % (rows.length + 1);
        const all = emptyWindow(reference);
        const left = emptyWindow(reference);
        const right = emptyWindow(reference);
        rows.forEach((row, i) => {
          observeRow(reference, all, row);
          observeRow(reference, i < split ? left : right, row);
        });
        expect(mergeWindows(left, right)).toEqual(all);
        expect(all.features.x!.counts.length).toBe(reference.features.x!.counts.length);
      }),
    );
  });
});

describe('compareToProfile', () => {
  const repeat = (value: Row, n: number): Row[] => Array.from({ length: n }, () => value);
  const referenceRows = [...repeat({ c: 'a', x: 1 }, 30), ...repeat({ c: 'b', x: 2 }, 50), ...repeat({ c: 'c', x: 3 }, 20)];
  const profile = buildProfile(referenceRows, featureSpecs, { bins: 10 });

  it('finds no drift in the reference itself', () => {
    const window = emptyWindow(profile);
    referenceRows.forEach((row) => observeRow(profile, window, row));
    const report = compareToProfile(profile, window);
    for (const feature of Object.values(report.features)) {
      expect(feature.psi).toBe(0);
      expect(feature.jensenShannon).toBe(0);
      expect(feature.test.pValue).toBe(1);
      expect(feature.drift).toBe(false);
    }
    expect(report.drifted).toEqual([]);
  });

  it('tests categorical features with chi-square and numeric ones with binned KS, Bonferroni-corrected', () => {
    const currentRows = [
      ...repeat({ c: 'a', x: 1 }, 20),
      ...repeat({ c: 'b', x: 2 }, 40),
      ...repeat({ c: 'c', x: 3 }, 30),
      ...repeat({ c: null, x: 3 }, 10),
    ];
    const window = emptyWindow(profile);
    currentRows.forEach((row) => observeRow(profile, window, row));
    const report = compareToProfile(profile, window, { alpha: 0.05 });
    expect(report.tested).toBe(2);
    const c = report.features.c!;
    // Reference a/b/c = 30/50/20 against 20/40/30 (10 missing). Homogeneity test on the 2 x 3 table:
    // totals 50/90/50, n = 100, m = 90, expected ref = total * 100/190, cur = total * 90/190.
    const totals = [50, 90, 50];
    const observed = [
      [30, 50, 20],
      [20, 40, 30],
    ];
    let chi2 = 0;
    observed.forEach((row, r) =>
      row.forEach((o, k) => {
        const e = (totals[k]! * (r === 0 ? 100 : 90)) / 190;
        chi2 += (o - e) ** 2 / e;
      }),
    );
    expect(c.test.name).toBe('chi-square');
    expect(c.test.statistic).toBeCloseTo(chi2, 12);
    expect(c.test.df).toBe(2);
    // df = 2: p = exp(-chi2 / 2); Bonferroni over the 2 features: 2p.
    expect(c.test.pValue).toBeCloseTo(Math.exp(-chi2 / 2), 12);
    expect(c.test.adjustedPValue).toBeCloseTo(Math.min(1, 2 * Math.exp(-chi2 / 2)), 12);
    expect(c.missingRate).toEqual({ reference: 0, current: 0.1 });
    expect(report.features.x!.test.name).toBe('ks-binned');
    expect(report.features.x!.kind).toBe('numeric');
  });

  it('flags a shifted numeric feature', () => {
    const window = emptyWindow(profile);
    for (let i = 0; i < 100; i++) observeRow(profile, window, { x: 3, c: ['a', 'b', 'c'][i % 3] });
    const report = compareToProfile(profile, window);
    expect(report.features.x!.drift).toBe(true);
    expect(report.features.x!.psi).toBeGreaterThan(0.25);
    expect(report.drifted).toContain('x');
  });

  it('accepts exact test results from outside and rejects unknown features', () => {
    const window = emptyWindow(profile);
    referenceRows.forEach((row) => observeRow(profile, window, row));
    const report = compareToProfile(profile, window, { tests: { x: { name: 'ks', statistic: 0.5, pValue: 0.001 } } });
    expect(report.features.x!.test).toEqual({ name: 'ks', statistic: 0.5, pValue: 0.001, adjustedPValue: 0.002 });
    expect(() => compareToProfile(profile, window, { features: ['nope'] })).toThrow(/no feature "nope"/);
  });
});

describe('ksTestAgainstProfile', () => {
  it('is the exact two-sample test when the reference fits in the quantile summary', () => {
    const reference = [0.1, 0.4, 0.7, 1.2, 1.5];
    const current = [0.3, 0.9, 1.6, 2.0, 2.2, 2.5];
    expect(ksTestAgainstProfile(numericProfile(reference), current)).toEqual(ksTest(reference, current));
  });

  it('stays within 1/(k - 1) of the full-reference D and uses the real reference size', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 400 }),
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 2, max: 40 }),
        (reference, current, k) => {
          const feature = numericProfile(reference, { maxQuantiles: k });
          const approx = ksTestAgainstProfile(feature, current);
          const exact = ksTest(reference, current);
          expect(approx.n).toBe(reference.length);
          expect(Math.abs(approx.statistic - exact.statistic)).toBeLessThanOrEqual(1 / (k - 1) + 1e-12);
        },
      ),
      { numRuns: 300 },
    );
  });
});
