/**
 * The validation report of a binary classifier: ROC AUC, log loss and expected calibration
 * error (10 equal-width bins, the monitor's definition) on one labelled set, and the
 * side-by-side comparison of two models scored on the same rows.
 */
import { expectedCalibrationError } from '../monitoring/quality.js';
import { logLoss, rocAuc } from './metrics.js';

export interface ValidationMetrics {
  auc: number;
  log_loss: number;
  /** Expected calibration error over 10 equal-width score bins. */
  ece: number;
  rows: number;
  positives: number;
}

export function validationMetrics(scores: ArrayLike<number>, labels: ArrayLike<number>): ValidationMetrics {
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i] === 1 ? 1 : 0;
  return {
    auc: rocAuc(scores, labels),
    log_loss: logLoss(scores, labels),
    ece: expectedCalibrationError(scores, labels),
    rows: scores.length,
    positives,
  };
}

export interface ModelComparison {
  rows: number;
  challenger: ValidationMetrics;
  champion: ValidationMetrics;
  /** Challenger minus champion: positive AUC and negative log loss / ECE favour the challenger. */
  difference: { auc: number; log_loss: number; ece: number };
}

/** Scores of a challenger and of the champion on the same labelled rows, compared. */
export function compareModels(challenger: ArrayLike<number>, champion: ArrayLike<number>, labels: ArrayLike<number>): ModelComparison {
  if (challenger.length !== labels.length || champion.length !== labels.length) {
    throw new Error(`compareModels: ${challenger.length} challenger and ${champion.length} champion scores for ${labels.length} labels`);
  }
  const a = validationMetrics(challenger, labels);
  const b = validationMetrics(champion, labels);
  return {
    rows: labels.length,
    challenger: a,
    champion: b,
    difference: { auc: a.auc - b.auc, log_loss: a.log_loss - b.log_loss, ece: a.ece - b.ece },
  };
}
