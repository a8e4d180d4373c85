import { describe, expect, it } from 'vitest';
import { compareModels, validationMetrics } from './evaluation.js';
import { logLoss, rocAuc } from './metrics.js';

describe('validationMetrics', () => {
  it('reports AUC, log loss, expected calibration error, rows and positives', () => {
    const scores = [0.05, 0.15, 0.55, 0.95, 0.91, 0.12];
    const labels = [0, 0, 1, 1, 1, 0];
    const m = validationMetrics(scores, labels);
    expect(m.auc).toBe(rocAuc(scores, labels));
    expect(m.log_loss).toBe(logLoss(scores, labels));
    // Bins [0, 0.1): 0.05 vs 0; [0.1, 0.2): 0.15, 0.12 vs 0, 0; [0.5, 0.6): 0.55 vs 1; [0.9, 1]: 0.95, 0.91 vs 1, 1.
    const ece = (0.05 + (0.15 + 0.12) + (1 - 0.55) + (2 - 0.95 - 0.91)) / 6;
    expect(m.ece).toBeCloseTo(ece, 12);
    expect(m.rows).toBe(6);
    expect(m.positives).toBe(3);
  });
});

describe('compareModels', () => {
  it('puts both models side by side with the differences, challenger minus champion', () => {
    const labels = [0, 1, 0, 1];
    const c = compareModels([0.1, 0.9, 0.2, 0.8], [0.6, 0.4, 0.3, 0.7], labels);
    expect(c.rows).toBe(4);
    expect(c.challenger.auc).toBe(1);
    expect(c.champion.auc).toBe(0.75);
    expect(c.difference.auc).toBe(0.25);
    expect(c.difference.log_loss).toBeCloseTo(c.challenger.log_loss - c.champion.log_loss, 14);
    expect(c.difference.log_loss).toBeLessThan(0);
    expect(() => compareModels([0.1], [0.1, 0.2], [0, 1])).toThrow(/1 challenger and 2 champion scores for 2 labels/);
  });
});
