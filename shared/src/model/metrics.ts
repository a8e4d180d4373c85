/** Binary classification metrics for validating trained models. Pure functions. */

/**
 * Area under the ROC curve: the probability that a random positive scores above a
 * random negative, ties counting one half (Mann-Whitney U with average ranks).
 * Returns NaN when either class is absent.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  validate('rocAuc', scores, labels);
  const n = scores.length;
  // Compare rather than subtract: Infinity - Infinity is NaN.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
    const sa = scores[a] as number;
    const sb = scores[b] as number;
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  });
  let positives = 0;
  let positiveRankSum = 0;
  for (let start = 0; start < n;) {
    let end = start + 1;
    while (end < n && scores[order[end] as number] === scores[order[start] as number]) end++;
    // Ranks start..end-1 (0-based) are tied: each gets the average 1-based rank.
    const averageRank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) {
      if (labels[order[k] as number] === 1) {
        positives++;
        positiveRankSum += averageRank;
      }
    }
    start = end;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export const LOG_LOSS_EPSILON = 1e-15;

/** Mean binary cross-entropy, probabilities clipped to [1e-15, 1 - 1e-15]. */
export function logLoss(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  validate('logLoss', scores, labels);
  if (scores.length === 0) throw new Error('logLoss: no scores');
  let total = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i] as number;
    if (s < 0 || s > 1) throw new Error(`logLoss: scores[${i}] is ${s}, probabilities must be in [0, 1]`);
    const p = Math.min(Math.max(s, LOG_LOSS_EPSILON), 1 - LOG_LOSS_EPSILON);
    total -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return total / scores.length;
}

function validate(metric: string, scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) {
    throw new Error(`${metric}: ${scores.length} scores but ${labels.length} labels`);
  }
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (typeof s !== 'number' || Number.isNaN(s)) throw new Error(`${metric}: scores[${i}] is ${String(s)}`);
    const label = labels[i];
    if (label !== 0 && label !== 1) throw new Error(`${metric}: labels[${i}] is ${String(label)}, labels must be 0 or 1`);
  }
}
