/**
 * Label-based quality of a binary classifier on samples: confusion counts at the model's
 * threshold (predicted positive when score >= threshold) and the metrics derived from them,
 * ROC AUC with weighted labels (ties count one half), expected calibration error.
 * ROC AUC and log loss on 0/1 labels are `rocAuc` and `logLoss` of shared/src/model/metrics.
 * A metric whose denominator is zero (precision with no predicted positive...) is NaN.
 */

export interface ConfusionCounts {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface ClassificationMetrics {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** False-positive rate fp / (fp + tn) and false-negative rate fn / (fn + tp). */
  fpr: number;
  fnr: number;
}

export function emptyConfusion(): ConfusionCounts {
  return { tp: 0, fp: 0, tn: 0, fn: 0 };
}

/**
 * Adds one prediction to confusion counts (in place). `positive` is the label (0 or 1) or,
 * for estimated counts, the probability that the label is 1.
 */
export function addToConfusion(counts: ConfusionCounts, score: number, positive: number, threshold: number): void {
  if (score >= threshold) {
    counts.tp += positive;
    counts.fp += 1 - positive;
  } else {
    counts.fn += positive;
    counts.tn += 1 - positive;
  }
}

export function mergeConfusion(a: ConfusionCounts, b: ConfusionCounts): ConfusionCounts {
  return { tp: a.tp + b.tp, fp: a.fp + b.fp, tn: a.tn + b.tn, fn: a.fn + b.fn };
}

export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): ConfusionCounts {
  sameLength('confusionAt', scores, labels);
  const counts = emptyConfusion();
  for (let i = 0; i < scores.length; i++) addToConfusion(counts, scores[i] as number, labels[i] as number, threshold);
  return counts;
}

export function classificationMetrics(c: ConfusionCounts): ClassificationMetrics {
  const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
  const precision = ratio(c.tp, c.tp + c.fp);
  const recall = ratio(c.tp, c.tp + c.fn);
  return {
    accuracy: ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn),
    precision,
    recall,
    // 2 tp / (2 tp + fp + fn): defined even when precision is not (and then 0 if tp = 0).
    f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    fpr: ratio(c.fp, c.fp + c.tn),
    fnr: ratio(c.fn, c.fn + c.tp),
  };
}

/**
 * ROC AUC with a weight of positive class per sample (1/0 for labels, a probability for
 * CBPE): sum over pairs of w+_i w-_j ([s_i > s_j] + [s_i = s_j] / 2) divided by W+ W-, with
 * w- = 1 - w+. With 0/1 weights this is the Mann-Whitney AUC. As NannyML's CBPE, a sample
 * paired with itself counts (a tie): this only matters for fractional weights.
 * NaN when W+ or W- is zero.
 */
export function weightedRocAuc(scores: ArrayLike<number>, positiveWeights: ArrayLike<number>): number {
  sameLength('weightedRocAuc', scores, positiveWeights);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => (scores[a] as number) - (scores[b] as number));
  let negativesBelow = 0;
  let area = 0;
  let positives = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    let groupPositive = 0;
    let groupNegative = 0;
    const s = scores[order[start] as number];
    while (end < order.length && scores[order[end] as number] === s) {
      const w = positiveWeights[order[end] as number] as number;
      groupPositive += w;
      groupNegative += 1 - w;
      end++;
    }
    area += groupPositive * (negativesBelow + groupNegative / 2);
    negativesBelow += groupNegative;
    positives += groupPositive;
    start = end;
  }
  const negatives = negativesBelow;
  return positives > 0 && negatives > 0 ? area / (positives * negatives) : NaN;
}

/**
 * Expected calibration error with `bins` equal-width score bins on [0, 1] (a score of 1
 * falls in the last bin): sum_b (n_b / n) |mean label_b - mean score_b|.
 */
export function expectedCalibrationError(scores: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): number {
  sameLength('expectedCalibrationError', scores, labels);
  const calibration = new CalibrationBins(bins);
  for (let i = 0; i < scores.length; i++) calibration.add(scores[i] as number, labels[i] as number);
  return calibration.ece();
}

/** Per score bin: count, sum of scores, sum of labels. Fixed memory, mergeable; exact ECE on its bins. */
export class CalibrationBins {
  readonly count: number[];
  readonly scoreSum: number[];
  readonly labelSum: number[];

  constructor(readonly bins = 10) {
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
    this.count = new Array<number>(bins).fill(0);
    this.scoreSum = new Array<number>(bins).fill(0);
    this.labelSum = new Array<number>(bins).fill(0);
  }

  add(score: number, label: number): void {
    const b = scoreBin(score, this.bins);
    this.count[b]!++;
    this.scoreSum[b]! += score;
    this.labelSum[b]! += label;
  }

  merge(other: CalibrationBins): CalibrationBins {
    if (other.bins !== this.bins) throw new Error('CalibrationBins.merge: different bin counts');
    const out = new CalibrationBins(this.bins);
    for (let b = 0; b < this.bins; b++) {
      out.count[b] = (this.count[b] as number) + (other.count[b] as number);
      out.scoreSum[b] = (this.scoreSum[b] as number) + (other.scoreSum[b] as number);
      out.labelSum[b] = (this.labelSum[b] as number) + (other.labelSum[b] as number);
    }
    return out;
  }

  ece(): number {
    const n = this.count.reduce((a, b) => a + b, 0);
    if (n === 0) return NaN;
    let total = 0;
    for (let b = 0; b < this.bins; b++) {
      const nb = this.count[b] as number;
      if (nb > 0) total += Math.abs((this.labelSum[b] as number) - (this.scoreSum[b] as number)) / n;
    }
    return total;
  }
}

/** The equal-width bin of a score in [0, 1] among `bins` (1 goes to the last bin). */
export function scoreBin(score: number, bins: number): number {
  if (!(score >= 0 && score <= 1)) throw new RangeError(`score must be a probability in [0, 1], got ${score}`);
  return Math.min(bins - 1, Math.floor(score * bins));
}

function sameLength(name: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`${name}: ${a.length} scores but ${b.length} labels`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${name}: scores[${i}] is ${String(a[i])}`);
    const w = b[i] as number;
    if (!(w >= 0 && w <= 1)) throw new Error(`${name}: labels[${i}] is ${String(w)}, expected 0, 1 or a probability`);
  }
}
