/**
 * Confidence-based performance estimation (CBPE, after NannyML) for the time before labels
 * arrive. If the scores are calibrated, a prediction with score p is a positive with
 * probability p, so the expected confusion matrix at the threshold is
 *   E[tp] = sum of p over predicted positives, E[fp] = sum of (1 - p) over them,
 *   E[fn] = sum of p over predicted negatives, E[tn] = sum of (1 - p) over them,
 * and the metrics are computed from those expected counts (a ratio of expectations, as
 * NannyML). The estimated ROC AUC is the AUC with each sample weighted p as positive and
 * 1 - p as negative (NannyML's expected TPR/FPR curve). Every result carries
 * `estimated: true`. Scores that are not calibrated give biased estimates: calibrate
 * first (e.g. `histogramCalibrator` fitted on labelled reference data).
 */
import { addToConfusion, classificationMetrics, emptyConfusion, mergeConfusion, scoreBin, weightedRocAuc } from './quality.js';
import type { ClassificationMetrics, ConfusionCounts } from './quality.js';
import { checkThreshold, ScoreHistogram } from './quality-window.js';

export interface EstimatedPerformance extends ClassificationMetrics {
  estimated: true;
  count: number;
  /** Expected (fractional) confusion counts. */
  confusion: ConfusionCounts;
  rocAuc: number;
  /** |AUC on samples - rocAuc| bound for the streaming estimate; 0 on samples. */
  rocAucErrorBound: number;
}

/**
 * CBPE on a sample. The decision uses the model's score (positive when score >= threshold);
 * the probability that a prediction is positive is the score itself, or `probabilities[i]`
 * when the scores were calibrated apart (e.g. by `histogramCalibrator`).
 */
export function estimatePerformance(
  scores: readonly number[],
  threshold: number,
  probabilities: readonly number[] = scores,
): EstimatedPerformance {
  checkThreshold(threshold);
  if (probabilities.length !== scores.length)
    throw new Error(`estimatePerformance: ${scores.length} scores but ${probabilities.length} probabilities`);
  const confusion = emptyConfusion();
  scores.forEach((score, i) => {
    const p = probabilities[i] as number;
    scoreBin(score, 1); // validates both are probabilities
    scoreBin(p, 1);
    addToConfusion(confusion, score, p, threshold);
  });
  return {
    estimated: true,
    count: scores.length,
    confusion,
    ...classificationMetrics(confusion),
    rocAuc: weightedRocAuc(scores, probabilities),
    rocAucErrorBound: 0,
  };
}

/** CBPE over a stream in fixed memory: expected confusion counts plus a score histogram for the AUC. */
export class CbpeAccumulator {
  confusion: ConfusionCounts = emptyConfusion();
  histogram: ScoreHistogram;
  count = 0;

  constructor(
    readonly threshold: number,
    readonly scoreBins = 100,
  ) {
    checkThreshold(threshold);
    this.histogram = new ScoreHistogram(scoreBins);
  }

  /** Adds a prediction: its score, and its calibrated probability of being positive (default: the score). */
  add(score: number, p = score): void {
    scoreBin(p, 1);
    this.histogram.add(score, p);
    addToConfusion(this.confusion, score, p, this.threshold);
    this.count++;
  }

  merge(other: CbpeAccumulator): CbpeAccumulator {
    const out = new CbpeAccumulator(this.threshold, this.scoreBins);
    out.confusion = mergeConfusion(this.confusion, other.confusion);
    out.histogram = this.histogram.merge(other.histogram);
    out.count = this.count + other.count;
    return out;
  }

  estimate(): EstimatedPerformance {
    const auc = this.histogram.rocAuc();
    return {
      estimated: true,
      count: this.count,
      confusion: { ...this.confusion },
      ...classificationMetrics(this.confusion),
      rocAuc: auc.value,
      rocAucErrorBound: auc.errorBound,
    };
  }
}

/**
 * Histogram-binning calibration fitted on labelled reference scores: a score maps to the
 * positive rate of its equal-width bin in the reference (bins with fewer than `minCount`
 * reference scores keep the score as is). Returns the calibrating function.
 */
export function histogramCalibrator(scores: readonly number[], labels: readonly number[], bins = 10, minCount = 10): (p: number) => number {
  if (scores.length !== labels.length) throw new Error(`histogramCalibrator: ${scores.length} scores but ${labels.length} labels`);
  const count = new Array<number>(bins).fill(0);
  const positives = new Array<number>(bins).fill(0);
  scores.forEach((s, i) => {
    const b = scoreBin(s, bins);
    count[b]!++;
    positives[b]! += labels[i] as number;
  });
  return (p: number) => {
    const b = scoreBin(p, bins);
    return (count[b] as number) >= minCount ? (positives[b] as number) / (count[b] as number) : p;
  };
}
