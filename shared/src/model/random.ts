/**
 * A small seeded pseudo-random generator (mulberry32) so that training is
 * reproducible: the same seed gives the same sequence on every platform.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Standard normal (mean 0, standard deviation 1), Box-Muller. */
  normal(): number;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** Fisher-Yates shuffle of `items`, in place; returns `items`. */
  shuffle<T>(items: T[]): T[];
}

export function createRandom(seed: number): Random {
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`createRandom: seed must be a safe integer, got ${String(seed)}`);
  }
  let state = seed >>> 0;

  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  const int = (maxExclusive: number): number => {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive <= 0) {
      throw new Error(`Random.int: maxExclusive must be a positive integer, got ${String(maxExclusive)}`);
    }
    return Math.floor(next() * maxExclusive);
  };

  return {
    next,
    int,
    normal(): number {
      // 1 - next() is in (0, 1], so the logarithm is finite.
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(i + 1);
        const tmp = items[i] as T;
        items[i] = items[j] as T;
        items[j] = tmp;
      }
      return items;
    },
  };
}
