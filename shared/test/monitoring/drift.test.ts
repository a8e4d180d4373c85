import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bonferroni, chiSquareTest, jensenShannon, ksTest, ksTestBinned, missingRate, psi } from '../../src/monitoring/drift.js';
import { kolmogorovSurvival } from '../../src/monitoring/special.js';

const histogram = fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 12 }).filter((h) => h.some((c) => c > 0));
const histogramPair = fc
  .integer({ min: 1, max: 12 })
  .chain((k) =>
    fc.tuple(
      fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: k, maxLength: k }),
      fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: k, maxLength: k }),
    ),
  )
  .filter(([a, b]) => a.some((c) => c > 0) && b.some((c) => c > 0));

describe('psi', () => {
  it('matches the hand computation on four bins', () => {
    // expected 25% each, actual 10/20/30/40%:
    // (0.1-0.25) ln 0.4 + (0.2-0.25) ln 0.8 + (0.3-0.25) ln 1.2 + (0.4-0.25) ln 1.6 = 0.22821740957339182
    expect(psi([25, 25, 25, 25], [10, 20, 30, 40])).toBeCloseTo(0.22821740957339182, 12);
  });

  it('replaces an empty bin by epsilon = 1e-4', () => {
    // expected 50/50/0 -> 0.5/0.5/1e-4, actual 0.4/0.4/0.2:
    // 2 (-0.1) ln 0.8 + (0.2 - 1e-4) ln(0.2 / 1e-4) = 1.5640491119253044
    expect(psi([50, 50, 0], [40, 40, 20])).toBeCloseTo(1.5640491119253044, 12);
  });

  it('replaces only empty bins: proportions below epsilon count as they are (Evidently)', () => {
    // numpy, with p = where(p == 0, 1e-4, p) on the proportions, then sum((a - e) * log(a / e)):
    // 3 and 9 in 100,000: 6.592033753610065e-05 (clamping both to 1e-4 gave 3.6e-9)
    expect(psi([3, 99997], [9, 99991])).toBeCloseTo(6.592033753610065e-5, 15);
    // 5 in 100,000 against none (1e-4 in its place): 3.465985909049935e-05
    expect(psi([5, 99995], [0, 100000])).toBeCloseTo(3.465985909049935e-5, 15);
    // 1 in 100,000 against half: 5.756342603305464
    expect(psi([1, 99999], [50000, 50000])).toBeCloseTo(5.756342603305464, 12);
  });

  it('is >= 0, and 0 for identical (or proportional) histograms', () => {
    fc.assert(
      fc.property(histogramPair, ([a, b]) => {
        expect(psi(a, b)).toBeGreaterThanOrEqual(0);
        expect(psi(a, a)).toBe(0);
        expect(
          psi(
            a,
            a.map((c) => c * 3),
          ),
        ).toBeCloseTo(0, 12);
      }),
    );
  });

  it('rejects histograms of different lengths and negative counts', () => {
    expect(() => psi([1, 2], [1, 2, 3])).toThrow(/2 and 3 bins/);
    expect(() => psi([1, -2], [1, 2])).toThrow(/>= 0/);
  });
});

describe('jensenShannon', () => {
  it('matches hand computations (base 2)', () => {
    // Disjoint supports: 1 bit.
    expect(jensenShannon([1, 0], [0, 1])).toBe(1);
    // p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    // KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2) ; KL(q||m) = log2(4/3) ; JS = (KL(p||m) + KL(q||m)) / 2
    const expected = (0.5 * Math.log2(2 / 3) + 0.5 + Math.log2(4 / 3)) / 2;
    expect(expected).toBeCloseTo(0.3112781244591328, 14);
    expect(jensenShannon([5, 5], [8, 0])).toBeCloseTo(expected, 14);
    // scipy.spatial.distance.jensenshannon([.1,.2,.3,.4], [.25]*4, base=2) ** 2
    expect(jensenShannon([10, 20, 30, 40], [1, 1, 1, 1])).toBeCloseTo(0.0402015823461419, 12);
  });

  it('is symmetric, in [0, 1], and 0 for identical histograms', () => {
    fc.assert(
      fc.property(histogramPair, ([a, b]) => {
        const js = jensenShannon(a, b);
        expect(js).toBeGreaterThanOrEqual(0);
        expect(js).toBeLessThanOrEqual(1);
        expect(jensenShannon(b, a)).toBeCloseTo(js, 14);
        expect(jensenShannon(a, a)).toBeCloseTo(0, 14);
      }),
    );
  });
});

describe('ksTest', () => {
  it('refuses a sample holding NaN or an infinity, naming where (NaN made it loop for ever)', () => {
    expect(() => ksTest([0.1, NaN, 0.7], [0.3, 0.9])).toThrow(
      new RangeError('ksTest: sample a holds NaN at index 1 (finite numbers only)'),
    );
    expect(() => ksTest([0.1, 0.7], [0.3, 0.9, NaN])).toThrow(
      new RangeError('ksTest: sample b holds NaN at index 2 (finite numbers only)'),
    );
    expect(() => ksTest([0.1, 0.7], [-Infinity, 0.9])).toThrow(
      new RangeError('ksTest: sample b holds -Infinity at index 0 (finite numbers only)'),
    );
  });

  it('computes D and the asymptotic p-value on a hand example', () => {
    // a = {0.1, 0.4, 0.7, 1.2, 1.5}, b = {0.3, 0.9, 1.6, 2.0, 2.2, 2.5}.
    // At x = 1.5: F_a = 5/5, F_b = 2/6, so D = 2/3 (the largest gap).
    // lambda = sqrt(5 * 6 / 11) * 2/3 = 1.1009637651263606
    // p = 2 (e^(-2 l^2) - e^(-8 l^2) + e^(-18 l^2) - ...) = 0.17709034663 - 0.00012293897 + 6.7e-10 = 0.17696740833316593
    const result = ksTest([0.1, 0.4, 0.7, 1.2, 1.5], [2.5, 0.3, 2.2, 0.9, 1.6, 2.0]);
    expect(result.statistic).toBeCloseTo(2 / 3, 14);
    expect(result.n).toBe(5);
    expect(result.m).toBe(6);
    expect(Math.abs(result.pValue - 0.17696740833316593)).toBeLessThan(1e-6);
  });

  it('handles ties across the samples', () => {
    // a = {1,2,2,3,3,3}, b = {2,3,3,4,4}: after 1: 1/6 vs 0; after 2: 3/6 vs 1/5; after 3: 1 vs 3/5 -> D = 0.4
    // p = Q(sqrt(30/11) * 0.4) = 0.7754489529545198
    const result = ksTest([1, 2, 2, 3, 3, 3], [2, 3, 3, 4, 4]);
    expect(result.statistic).toBeCloseTo(0.4, 14);
    expect(Math.abs(result.pValue - 0.7754489529545198)).toBeLessThan(1e-6);
  });

  it('gives D = 0 and p = 1 for identical samples, NaN for an empty one', () => {
    expect(ksTest([3, 1, 2], [1, 2, 3])).toMatchObject({ statistic: 0, pValue: 1 });
    expect(ksTest([], [1]).pValue).toBeNaN();
  });

  it('binned D on the same bins never exceeds the sample D', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 6 }),
        (a, b, cuts) => {
          const edges = [...new Set(cuts)].sort((x, y) => x - y);
          const bin = (x: number) => edges.filter((e) => e <= x).length;
          const ha = new Array<number>(edges.length + 1).fill(0);
          const hb = new Array<number>(edges.length + 1).fill(0);
          a.forEach((x) => ha[bin(x)]!++);
          b.forEach((x) => hb[bin(x)]!++);
          expect(ksTestBinned(ha, hb).statistic).toBeLessThanOrEqual(ksTest(a, b).statistic + 1e-12);
        },
      ),
    );
  });

  it('binned KS on unit bins equals the sample KS for integer data', () => {
    // The same samples as the ties example, counted on bins of width 1.
    const result = ksTestBinned([1, 2, 3, 0], [0, 1, 2, 2]);
    expect(result.statistic).toBeCloseTo(0.4, 14);
    expect(result.pValue).toBeCloseTo(kolmogorovSurvival(Math.sqrt(30 / 11) * 0.4), 14);
  });
});

describe('chiSquareTest', () => {
  it('matches the hand computation of the 2 x 3 homogeneity test', () => {
    // reference 30/50/20, current 20/40/40; column totals 50/90/60, expected half each: 25/45/30.
    // chi2 = 2 (25/25 + 25/45 + 100/30) = 88/9 = 9.777..., df = 2, p = exp(-chi2 / 2) = exp(-44/9) = 0.0075297842...
    const result = chiSquareTest([30, 50, 20], [20, 40, 40]);
    expect(result.statistic).toBeCloseTo(88 / 9, 12);
    expect(result.df).toBe(2);
    expect(Math.abs(result.pValue - Math.exp(-44 / 9))).toBeLessThan(1e-9);
    expect(Math.abs(result.pValue - 0.007529784255650024)).toBeLessThan(1e-6);
  });

  it('skips categories empty in both samples and scales to unequal sample sizes', () => {
    // reference 10/10/0 (n = 20), current 30/10/0 (m = 40): totals 40/20, expected ref 40/3, 20/3; cur 80/3, 40/3
    // chi2 = (10-40/3)^2/(40/3) + (10-20/3)^2/(20/3) + (30-80/3)^2/(80/3) + (10-40/3)^2/(40/3) = 3.75, df = 1
    const result = chiSquareTest([10, 10, 0], [30, 10, 0]);
    expect(result.statistic).toBeCloseTo(3.75, 12);
    expect(result.df).toBe(1);
    // df = 1: p = erfc(sqrt(3.75 / 2)) = 0.052807511416113...
    expect(Math.abs(result.pValue - 0.05280751141611)).toBeLessThan(1e-6);
  });

  it('gives p = 1 for identical proportions and NaN for an empty sample', () => {
    expect(chiSquareTest([10, 20, 30], [20, 40, 60])).toMatchObject({ statistic: 0, df: 2, pValue: 1 });
    expect(chiSquareTest([0, 0], [1, 2]).pValue).toBeNaN();
  });

  it('pools the categories expected fewer than 5 times in the smaller sample (Cochran), then tests', () => {
    // n = 1000, m = 100: expected in the current sample 50, 30, 9.8, 4.2, 3, 2, 1. The last four
    // pool into one column (ref 100, cur 12; expected 10.2), df = 3.
    // scipy.stats.chi2_contingency([[500,300,100,100],[50,30,8,12]], correction=False)
    //   -> statistic 0.7275132275132271, p 0.8667142657502716, df 3
    const result = chiSquareTest([500, 300, 100, 40, 30, 20, 10], [50, 30, 8, 6, 3, 2, 1]);
    expect(result.statistic).toBeCloseTo(0.7275132275132271, 10);
    expect(result.df).toBe(3);
    expect(Math.abs(result.pValue - 0.8667142657502716)).toBeLessThan(1e-9);
  });

  it('does not call drift on one row of a category the large reference holds twice', () => {
    // Unpooled: chi2 = 65.37, df 2, p = 6.4e-15 (scipy), while the exact conditional p of the
    // table is 0.0149. The third category (expected 0.015 in the window) pools alone, still
    // below 5, so it joins the smallest other column: [[10000, 10002], [50, 50]].
    // scipy.stats.chi2_contingency([[10000,10002],[50,50]], correction=False)
    //   -> statistic 9.948264052302993e-07, p 0.999204182213301, df 1
    const result = chiSquareTest([10000, 10000, 2], [50, 49, 1]);
    expect(result.statistic).toBeCloseTo(9.948264052302993e-7, 12);
    expect(result.df).toBe(1);
    expect(Math.abs(result.pValue - 0.999204182213301)).toBeLessThan(1e-9);
  });

  it('runs no test when pooling leaves fewer than two columns', () => {
    expect(chiSquareTest([3, 1, 0], [1, 0, 2])).toEqual({ statistic: 0, df: 0, pValue: 1 });
  });

  it('keeps near its level on a stable stream of rare categories (large reference, window of 100)', () => {
    // 45 categories with Zipf(2) weights; a reference of 20,000 rows and a window of 100, both
    // drawn from that distribution by a seeded generator. Without pooling, 21.6% of such windows
    // were called drifted at p < 0.05 and 13.7% at 0.0025 (0.05 / 20 features, Bonferroni).
    const random = mulberry32(20240601);
    const weights = Array.from({ length: 45 }, (_, i) => 1 / (i + 1) ** 2);
    const total = weights.reduce((a, b) => a + b, 0);
    const cdf: number[] = [];
    weights.reduce((acc, w, i) => (cdf[i] = acc + w / total), 0);
    const draw = (rows: number): number[] => {
      const counts = new Array<number>(weights.length).fill(0);
      for (let r = 0; r < rows; r++) {
        const u = random();
        let lo = 0;
        let hi = cdf.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((cdf[mid] as number) < u) lo = mid + 1;
          else hi = mid;
        }
        counts[lo]!++;
      }
      return counts;
    };
    const trials = 400;
    let at05 = 0;
    let at0025 = 0;
    for (let t = 0; t < trials; t++) {
      const { pValue } = chiSquareTest(draw(20_000), draw(100));
      if (pValue < 0.05) at05++;
      if (pValue < 0.0025) at0025++;
    }
    // Binomial(400, 0.05) stays under 32 (8%) with probability 0.9999; Binomial(400, 0.0025) under 5.
    expect(at05 / trials).toBeLessThan(0.08);
    expect(at0025).toBeLessThan(5);
  });
});

/** A small seeded generator of uniforms in [0, 1) (mulberry32), so a simulation is the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('bonferroni and missingRate', () => {
  it('multiplies by the number of tests, caps at 1 and ignores NaN', () => {
    expect(bonferroni([0.01, 0.2, NaN, 0.5])).toEqual([0.03, 0.6000000000000001, NaN, 1]);
  });

  it('missing rate is missing / total, NaN without data', () => {
    expect(missingRate(3, 12)).toBe(0.25);
    expect(missingRate(0, 0)).toBeNaN();
  });

  it('psi and js accept any single non-empty histogram against itself', () => {
    fc.assert(
      fc.property(histogram, (h) => {
        expect(psi(h, h) + jensenShannon(h, h)).toBeCloseTo(0, 12);
      }),
    );
  });
});
