/**
 * Special functions behind the p-values of the drift tests and of the canary rule. Pure, no
 * dependencies.
 *
 * - `logGamma`: Lanczos approximation (g = 7, 9 coefficients), relative error ~1e-15.
 * - `regularizedGammaP/Q`: the regularised incomplete gamma functions, by the power series
 *   for x < a + 1 and Lentz's continued fraction otherwise (Numerical Recipes, 3rd ed.,
 *   section 6.2), both iterated to a relative error of 1e-15.
 * - `chiSquareSurvival(x, df)` = Q(df / 2, x / 2), the chi-square p-value.
 * - `normalSurvival(z)` = P(Z > z) for a standard normal Z: Q(1/2, z^2 / 2) / 2 for z >= 0
 *   (the chi-square survival of z^2 with one degree of freedom, halved), 1 minus it below.
 * - `kolmogorovSurvival(lambda)` = P(K > lambda) for the Kolmogorov distribution, by the
 *   alternating series 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lambda^2) for lambda >= 1.18
 *   and by 1 - sqrt(2 pi) / lambda * sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 lambda^2)) below,
 *   where each series converges in a handful of terms.
 */

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Gamma(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0, got ${x}`);
  if (x < 0.5) {
    // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  }
  const z = x - 1;
  let sum = LANCZOS[0] as number;
  for (let i = 1; i < LANCZOS.length; i++) sum += (LANCZOS[i] as number) / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

const EPS = 1e-15;
const MAX_ITERATIONS = 10_000;
const TINY = 1e-300;

/** P(a, x) = gamma(a, x) / Gamma(a), the regularised lower incomplete gamma function. */
export function regularizedGammaP(a: number, x: number): number {
  checkGammaArgs(a, x);
  if (x === 0) return 0;
  if (x === Infinity) return 1;
  return x < a + 1 ? gammaSeries(a, x) : 1 - gammaContinuedFraction(a, x);
}

/** Q(a, x) = 1 - P(a, x), the regularised upper incomplete gamma function. */
export function regularizedGammaQ(a: number, x: number): number {
  checkGammaArgs(a, x);
  if (x === 0) return 1;
  if (x === Infinity) return 0;
  return x < a + 1 ? 1 - gammaSeries(a, x) : gammaContinuedFraction(a, x);
}

function checkGammaArgs(a: number, x: number): void {
  if (!(a > 0)) throw new RangeError(`incomplete gamma: a must be > 0, got ${a}`);
  if (!(x >= 0)) throw new RangeError(`incomplete gamma: x must be >= 0, got ${x}`);
}

function gammaSeries(a: number, x: number): number {
  let term = 1 / a;
  let sum = term;
  for (let n = 1; n < MAX_ITERATIONS; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

function gammaContinuedFraction(a: number, x: number): number {
  // Modified Lentz's method on the even part of the continued fraction for Gamma(a, x).
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** P(X > x) for X ~ chi-square with `df` degrees of freedom (df > 0). */
export function chiSquareSurvival(x: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`chiSquareSurvival: df must be > 0, got ${df}`);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 1;
  return regularizedGammaQ(df / 2, x / 2);
}

/** P(Z > z) for a standard normal Z (the one-sided p-value of a z statistic). */
export function normalSurvival(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const tail = regularizedGammaQ(0.5, (z * z) / 2) / 2;
  return z >= 0 ? tail : 1 - tail;
}

/** P(K > lambda) for the Kolmogorov distribution (the limit of sqrt(n) * D_n). */
export function kolmogorovSurvival(lambda: number): number {
  if (Number.isNaN(lambda)) return NaN;
  if (lambda <= 0) return 1;
  if (lambda < 1.18) {
    const w = (Math.PI * Math.PI) / (8 * lambda * lambda);
    let sum = 0;
    for (let k = 1; k < 100; k++) {
      const term = Math.exp(-(2 * k - 1) * (2 * k - 1) * w);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return clamp01(1 - (Math.sqrt(2 * Math.PI) / lambda) * sum);
  }
  let sum = 0;
  for (let k = 1; k < 100; k++) {
    const term = Math.exp(-2 * k * k * lambda * lambda);
    sum += k % 2 === 1 ? term : -term;
    if (term < 1e-17) break;
  }
  return clamp01(2 * sum);
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
