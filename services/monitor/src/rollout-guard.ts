/**
 * The monitor's part in rollouts (docs/inference.md, "Rollouts"):
 * - bandit feedback: every labelled prediction of a `bandit` variant is a reward for its
 *   version (1 when the decision at the version's threshold was right, else 0), added to the
 *   reward store the inference replicas read;
 * - the canary rule: a canary whose quality over the last hour is worse than the champion's by
 *   more than a margin beyond sampling error (a one-sided z test on the two standard errors,
 *   each look at the hour held to its share of the error rate; both sides with enough positive
 *   and negative labels) is rolled back: the routing returns to the champion alone (shadows
 *   kept), audited as `auto_rollback` by `monitor`, counted and logged.
 *   The ROC AUC is computed on score bins: while either side's error bound is above the
 *   margin, a difference of that size may be the bins' alone, and the rule waits.
 */
import { unanswered } from '@tributary/inference/routing';
import { normalSurvival, type Logger, type QualitySummary } from '@tributary/shared';

/**
 * The metrics the rule judges on: those whose standard error follows from the window's sums.
 * Precision (its denominator, the predicted positives, may be a handful), F1 and ECE have none
 * as simple, and are not offered.
 */
export const CANARY_METRICS = ['roc_auc', 'log_loss', 'accuracy', 'recall'] as const;
export type CanaryMetric = (typeof CANARY_METRICS)[number];

export interface CanaryRule {
  metric: CanaryMetric;
  /** How far below the champion (in the metric's units) the canary may fall. */
  margin: number;
  /** Positive labels, and negative labels, each side needs in the window before the rule judges. */
  minPerClass: number;
  /**
   * One-sided confidence that a canary rolled back is worse than the champion by more than the
   * margin, over all the looks at one hour: each look is held to (1 - confidence) / looks.
   */
  confidence: number;
}

/**
 * Standard error of a ROC AUC over `positives` and `negatives` (Hanley & McNeil, Radiology
 * 143:29-36, 1982): sqrt((A (1 - A) + (P - 1) (Q1 - A^2) + (N - 1) (Q2 - A^2)) / (P N)) with
 * Q1 = A / (2 - A) and Q2 = 2 A^2 / (1 + A).
 */
export function rocAucStdError(auc: number, positives: number, negatives: number): number {
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  const squared = auc * auc;
  return Math.sqrt((auc * (1 - auc) + (positives - 1) * (q1 - squared) + (negatives - 1) * (q2 - squared)) / (positives * negatives));
}

/** Standard error of a proportion p of n (binomial): sqrt(p (1 - p) / n). */
export function proportionStdError(p: number, n: number): number {
  return Math.sqrt((p * (1 - p)) / n);
}

const ESTIMATE: Record<CanaryMetric, (q: QualitySummary) => { value: number; stdError: number }> = {
  roc_auc: (q) => ({ value: q.rocAuc, stdError: rocAucStdError(q.rocAuc, q.positives, q.count - q.positives) }),
  log_loss: (q) => ({ value: q.logLoss, stdError: q.logLossStdError }),
  accuracy: (q) => ({ value: q.accuracy, stdError: proportionStdError(q.accuracy, q.count) }),
  recall: (q) => ({ value: q.recall, stdError: proportionStdError(q.recall, q.positives) }),
};
const LOWER_IS_BETTER = new Set<CanaryMetric>(['log_loss']);

export type CanaryVerdict = { kind: 'keep' | 'wait'; reason: string } | { kind: 'rollback'; reason: string };

/**
 * Judges a canary against its champion over the same window, one of `looks` at it (the
 * rule's passes over one hour's window): rolled back when the champion's lead less the margin,
 * over the standard error of the lead sqrt(se_champion^2 + se_canary^2), is a z whose one-sided
 * p-value is below (1 - confidence) / looks.
 */
export function judgeCanary(champion: QualitySummary, canary: QualitySummary, rule: CanaryRule, looks = 1): CanaryVerdict {
  const classes = (q: QualitySummary) => [q.positives, q.count - q.positives];
  if (Math.min(...classes(canary), ...classes(champion)) < rule.minPerClass) {
    const [p, n] = classes(canary);
    const [cp, cn] = classes(champion);
    return {
      kind: 'wait',
      reason: `${p} positive and ${n} negative canary labels, ${cp} and ${cn} champion ones (${rule.minPerClass} of each needed on each side)`,
    };
  }
  const ours = ESTIMATE[rule.metric](canary);
  const theirs = ESTIMATE[rule.metric](champion);
  if (!Number.isFinite(ours.value) || !Number.isFinite(theirs.value)) return { kind: 'wait', reason: `${rule.metric} not defined yet` };
  if (rule.metric === 'roc_auc' && !(canary.rocAucErrorBound <= rule.margin && champion.rocAucErrorBound <= rule.margin)) {
    return {
      kind: 'wait',
      reason:
        `roc_auc ${ours.value.toFixed(4)} against the champion's ${theirs.value.toFixed(4)} is binned: its error bound ` +
        `(${canary.rocAucErrorBound.toFixed(4)} canary, ${champion.rocAucErrorBound.toFixed(4)} champion) is above the margin ${rule.margin}`,
    };
  }
  const lead = LOWER_IS_BETTER.has(rule.metric) ? ours.value - theirs.value : theirs.value - ours.value;
  const stdError = Math.hypot(ours.stdError, theirs.stdError);
  // Both errors 0 (accuracies of 0 or 1): z is +-Infinity, or NaN (kept) for a lead of exactly the margin.
  const pValue = normalSurvival((lead - rule.margin) / stdError);
  const alpha = (1 - rule.confidence) / looks;
  const figures = `${rule.metric} ${ours.value.toFixed(4)} against the champion's ${theirs.value.toFixed(4)} over ${canary.count} and ${champion.count} labelled predictions`;
  const test =
    `the champion's lead ${lead.toFixed(4)} ± ${stdError.toFixed(4)} (standard error) beyond the margin ${rule.margin} at p = ` +
    `${pValue.toPrecision(2)} (rolled back below ${alpha.toPrecision(2)}: 1 - ${rule.confidence} over ${looks} look${looks === 1 ? '' : 's'} an hour)`;
  return pValue < alpha ? { kind: 'rollback', reason: `canary ${figures}: ${test}` } : { kind: 'keep', reason: `${figures}: ${test}` };
}

/** Rewards of labelled bandit predictions, added up per model and version. */
export class BanditRewards {
  private readonly pending = new Map<string, { model: string; version: string; trials: number; reward: number }>();

  observe(prediction: { model: string; version: string; variant: string; score: number }, label: 0 | 1, threshold: number): void {
    if (prediction.variant !== 'bandit') return;
    const key = `${prediction.model}\u0000${prediction.version}`;
    const entry = this.pending.get(key) ?? { model: prediction.model, version: prediction.version, trials: 0, reward: 0 };
    entry.trials++;
    if ((prediction.score >= threshold ? 1 : 0) === label) entry.reward++;
    this.pending.set(key, entry);
  }

  /**
   * Hands what was added up to `add` and forgets it; kept for the next call if `add` fails, unless
   * it failed for want of an answer in time (`unanswered`): the store may have taken it, and at
   * most once is the rule (a reward counted twice biases the draws more than one lost).
   */
  async flush(add: (model: string, version: string, trials: number, reward: number) => Promise<void>): Promise<void> {
    const entries = [...this.pending.values()];
    this.pending.clear();
    const failed: typeof entries = [];
    let unknown = 0;
    await Promise.all(
      entries.map((e) =>
        add(e.model, e.version, e.trials, e.reward).catch((error: unknown) => (unanswered(error) ? unknown++ : failed.push(e))),
      ),
    );
    if (unknown > 0 && failed.length === 0) {
      throw new Error(`bandit rewards of ${unknown} versions unanswered by the store: perhaps stored, not tried again`);
    }
    for (const e of failed) {
      const key = `${e.model}\u0000${e.version}`;
      const again = this.pending.get(key);
      this.pending.set(key, again ? { ...e, trials: e.trials + again.trials, reward: e.reward + again.reward } : e);
    }
    if (failed.length > 0) {
      throw new Error(
        `bandit rewards of ${failed.length} versions not stored; kept for the next try` +
          (unknown > 0 ? ` (${unknown} more unanswered: perhaps stored, not tried again)` : ''),
      );
    }
  }
}

/** A canary in force: its routing's revision tells it from a later rollout of the same versions. */
export interface CanaryRouting {
  champion: string;
  canary: string;
  revision: number;
}

/** What the canary rule needs of the routing: read it, and return to the champion alone. */
export interface RolloutControl {
  canaryOf(model: string): Promise<CanaryRouting | null>;
  /** False when the routing is no longer the one judged (someone changed it meanwhile): nothing is ended. */
  endCanary(model: string, judged: CanaryRouting, reason: string): Promise<boolean>;
}

export interface CanaryGuardOptions {
  rule: CanaryRule;
  /** Passes of the rule over one hour's window (an hour over the interval between passes). */
  looksPerHour: number;
  control: RolloutControl;
  /** Quality per series over the last hour. */
  quality(): { model: string; version: string; variant: string; quality: QualitySummary }[];
  logger: Logger;
  rolledBack(model: string): void;
}

/** One pass of the canary rule over every model with a canary in its traffic. */
export async function checkCanaries(options: CanaryGuardOptions): Promise<void> {
  const series = options.quality();
  const models = new Set(series.filter((s) => s.variant === 'canary').map((s) => s.model));
  for (const model of models) {
    const routing = await options.control.canaryOf(model);
    if (!routing) continue;
    const champion = series.find((s) => s.model === model && s.variant === 'champion' && s.version === routing.champion);
    const canary = series.find((s) => s.model === model && s.variant === 'canary' && s.version === routing.canary);
    if (!champion || !canary) continue;
    const verdict = judgeCanary(champion.quality, canary.quality, options.rule, options.looksPerHour);
    if (verdict.kind !== 'rollback') {
      // At debug: every pass, a wait or a keep is the usual state of a canary, not news.
      options.logger.debug({ model, canary: routing.canary, champion: routing.champion, verdict: verdict.kind }, verdict.reason);
      continue;
    }
    const reason = `automatic rollback of canary ${routing.canary}: ${verdict.reason}`;
    if (!(await options.control.endCanary(model, routing, reason))) {
      options.logger.info(
        { model, canary: routing.canary, champion: routing.champion, revision: routing.revision },
        `canary ${routing.canary} judged for a rollback, but the routing changed meanwhile: left as it is now`,
      );
      continue;
    }
    options.rolledBack(model);
    options.logger.error({ model, canary: routing.canary, champion: routing.champion }, reason);
  }
}
