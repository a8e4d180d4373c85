import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  chiSquareSurvival,
  kolmogorovSurvival,
  logGamma,
  normalSurvival,
  regularizedGammaP,
  regularizedGammaQ,
} from '../../src/monitoring/special.js';

describe('logGamma', () => {
  it('matches factorials and Gamma(1/2) = sqrt(pi)', () => {
    // Gamma(n) = (n - 1)!
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(21)).toBeCloseTo(Math.log(2.43290200817664e18), 10); // 20!
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    // Reflection branch: Gamma(0.25) = 3.6256099082219083...
    expect(logGamma(0.25)).toBeCloseTo(Math.log(3.625609908221908), 12);
  });
});

describe('regularised incomplete gamma', () => {
  it('P(1, x) = 1 - exp(-x) on both branches (series below a + 1, continued fraction above)', () => {
    for (const x of [0.1, 1.5, 2, 5, 30]) {
      expect(regularizedGammaP(1, x)).toBeCloseTo(1 - Math.exp(-x), 12);
      expect(regularizedGammaQ(1, x)).toBeCloseTo(Math.exp(-x), 12);
    }
  });

  it('Q(2, x) = exp(-x) (1 + x) and Q(3, x) = exp(-x) (1 + x + x^2 / 2)', () => {
    for (const x of [0.3, 2.9, 3.1, 12]) {
      expect(regularizedGammaQ(2, x)).toBeCloseTo(Math.exp(-x) * (1 + x), 12);
      expect(regularizedGammaQ(3, x)).toBeCloseTo(Math.exp(-x) * (1 + x + (x * x) / 2), 12);
    }
  });

  it('P + Q = 1 and both lie in [0, 1]', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.05, max: 200, noNaN: true }), fc.double({ min: 0, max: 400, noNaN: true }), (a, x) => {
        const p = regularizedGammaP(a, x);
        const q = regularizedGammaQ(a, x);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(q).toBeLessThanOrEqual(1);
        expect(Math.abs(p + q - 1)).toBeLessThan(1e-12);
      }),
    );
  });

  it('rejects a <= 0 and x < 0', () => {
    expect(() => regularizedGammaP(0, 1)).toThrow(/a must be > 0/);
    expect(() => regularizedGammaQ(1, -1)).toThrow(/x must be >= 0/);
  });
});

describe('chiSquareSurvival', () => {
  it('reproduces the critical values of the chi-square table', () => {
    // Table: chi2 = 3.841 at df = 1 is the 5% point (4 decimals of the table).
    expect(chiSquareSurvival(3.841, 1)).toBeCloseTo(0.05, 4);
    // The 95% quantile of chi2(1) to full precision is 1.959963984540054^2 = 3.841458820694124.
    expect(Math.abs(chiSquareSurvival(3.841458820694124, 1) - 0.05)).toBeLessThan(1e-6);
    // df = 1: p = erfc(sqrt(x / 2)); x = 1 -> 2 (1 - Phi(1)) = 0.31731050786291415.
    expect(Math.abs(chiSquareSurvival(1, 1) - 0.31731050786291415)).toBeLessThan(1e-9);
    expect(chiSquareSurvival(18.307, 10)).toBeCloseTo(0.05, 5);
    expect(chiSquareSurvival(6.635, 1)).toBeCloseTo(0.01, 4);
  });

  it('is exactly exp(-x / 2) for df = 2 and exp(-x / 2) (1 + x / 2) for df = 4', () => {
    for (const x of [0.5, 3, 9.21, 40]) {
      expect(Math.abs(chiSquareSurvival(x, 2) - Math.exp(-x / 2))).toBeLessThan(1e-12);
      expect(Math.abs(chiSquareSurvival(x, 4) - Math.exp(-x / 2) * (1 + x / 2))).toBeLessThan(1e-12);
    }
  });

  it('is 1 at x <= 0', () => {
    expect(chiSquareSurvival(0, 3)).toBe(1);
  });
});

describe('normalSurvival', () => {
  it('gives the upper tail of the standard normal, both sides of 0 and far out', () => {
    // 1 - Phi(z), to 16 digits (scipy.stats.norm.sf).
    const table: [number, number][] = [
      [0, 0.5],
      [0.5, 0.3085375387259869],
      [1.959963984540054, 0.025],
      [2.326347874040841, 0.01],
      [3.5, 0.00023262907903552502],
      [5, 2.866515718791933e-7],
      [8, 6.22096057427174e-16],
      [-1.5, 0.9331927987311419],
    ];
    for (const [z, tail] of table) expect(Math.abs(normalSurvival(z) - tail) / tail).toBeLessThan(1e-9);
    expect(normalSurvival(Infinity)).toBe(0);
    expect(normalSurvival(-Infinity)).toBe(1);
  });
});

describe('kolmogorovSurvival', () => {
  // Reference: Q(l) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 l^2), summed here to 12 terms.
  const series = (l: number) => {
    let s = 0;
    for (let k = 1; k <= 12; k++) s += 2 * (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * l * l);
    return s;
  };

  it('matches the alternating series to 1e-9 (both branches)', () => {
    for (const l of [0.6, 0.8, 1, 1.1009637651263606, 1.17, 1.18, 1.36, 2, 3]) {
      expect(Math.abs(kolmogorovSurvival(l) - series(l))).toBeLessThan(1e-9);
    }
  });

  it('gives the classic critical values', () => {
    // Q(1.3581) = 0.05 and Q(1.6276) = 0.01 (Smirnov's table, 4 digits).
    expect(kolmogorovSurvival(1.3581)).toBeCloseTo(0.05, 4);
    expect(kolmogorovSurvival(1.6276)).toBeCloseTo(0.01, 4);
    // Q(1) = 0.26999967167735456 (the series above, 16 digits).
    expect(Math.abs(kolmogorovSurvival(1) - 0.26999967167735456)).toBeLessThan(1e-12);
    expect(kolmogorovSurvival(0)).toBe(1);
    // Small lambda: the Jacobi-theta form gives 1 - 9.3e-6 at 0.3.
    expect(Math.abs(kolmogorovSurvival(0.3) - 0.9999906941986655)).toBeLessThan(1e-9);
  });

  it('is non-increasing', () => {
    let previous = 1;
    for (let l = 0; l <= 4; l += 0.01) {
      const q = kolmogorovSurvival(l);
      expect(q).toBeLessThanOrEqual(previous + 1e-15);
      previous = q;
    }
  });
});
