/**
 * The monitor's part in rollouts (docs/inference.md, "Rollouts"):
 * - bandit feedback: every labelled prediction of a `bandit` variant is a reward for its
 *   version (1 when the decision at the version's threshold was right, else 0), added to the
 *   reward store the inference replicas read;
 * - the canary rule: a canary whose quality over the last hour falls below the champion's by
 *   more than a margin (both with enough labels) is rolled back: the routing returns to the
 *   champion alone (shadows kept), audited as `auto_rollback` by `monitor`, counted and logged.
 *   The ROC AUC is computed on score bins: while either side's error bound is above the
 *   margin, a difference of that size may be the bins' alone, and the rule waits.
 */
import type { Logger, QualitySummary } from '@tributary/shared';

export const CANARY_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'ece'] as const;
export type CanaryMetric = (typeof CANARY_METRICS)[number];

export interface CanaryRule {
  metric: CanaryMetric;
  /** How far below the champion (in the metric's units) the canary may fall. */
  margin: number;
  /** Labelled predictions each side needs in the window before the rule judges. */
  minLabels: number;
}

const VALUE: Record<CanaryMetric, (q: QualitySummary) => number> = {
  accuracy: (q) => q.accuracy,
  precision: (q) => q.precision,
  recall: (q) => q.recall,
  f1: (q) => q.f1,
  roc_auc: (q) => q.rocAuc,
  log_loss: (q) => q.logLoss,
  ece: (q) => q.ece,
};
const LOWER_IS_BETTER = new Set<CanaryMetric>(['log_loss', 'ece']);

export type CanaryVerdict = { kind: 'keep' | 'wait'; reason: string } | { kind: 'rollback'; reason: string };

/** Judges a canary against its champion over the same window. */
export function judgeCanary(champion: QualitySummary, canary: QualitySummary, rule: CanaryRule): CanaryVerdict {
  if (champion.count < rule.minLabels || canary.count < rule.minLabels) {
    return { kind: 'wait', reason: `${canary.count} canary and ${champion.count} champion labels (${rule.minLabels} needed each)` };
  }
  const ours = VALUE[rule.metric](canary);
  const theirs = VALUE[rule.metric](champion);
  if (!Number.isFinite(ours) || !Number.isFinite(theirs)) return { kind: 'wait', reason: `${rule.metric} not defined yet` };
  if (rule.metric === 'roc_auc' && !(canary.rocAucErrorBound <= rule.margin && champion.rocAucErrorBound <= rule.margin)) {
    return {
      kind: 'wait',
      reason:
        `roc_auc ${ours.toFixed(4)} against the champion's ${theirs.toFixed(4)} is binned: its error bound ` +
        `(${canary.rocAucErrorBound.toFixed(4)} canary, ${champion.rocAucErrorBound.toFixed(4)} champion) is above the margin ${rule.margin}`,
    };
  }
  const worseBy = LOWER_IS_BETTER.has(rule.metric) ? ours - theirs : theirs - ours;
  const figures = `${rule.metric} ${ours.toFixed(4)} against the champion's ${theirs.toFixed(4)} over ${canary.count} and ${champion.count} labelled predictions`;
  return worseBy > rule.margin
    ? { kind: 'rollback', reason: `canary ${figures}: worse by more than the margin ${rule.margin}` }
    : { kind: 'keep', reason: figures };
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

  /** Hands what was added up to `add` and forgets it; kept for the next call if `add` fails. */
  async flush(add: (model: string, version: string, trials: number, reward: number) => Promise<void>): Promise<void> {
    const entries = [...this.pending.values()];
    this.pending.clear();
    const failed: typeof entries = [];
    await Promise.all(entries.map((e) => add(e.model, e.version, e.trials, e.reward).catch(() => failed.push(e))));
    for (const e of failed) {
      const key = `${e.model}\u0000${e.version}`;
      const again = this.pending.get(key);
      this.pending.set(key, again ? { ...e, trials: e.trials + again.trials, reward: e.reward + again.reward } : e);
    }
    if (failed.length > 0) throw new Error(`bandit rewards of ${failed.length} versions not stored; kept for the next try`);
  }
}

/** What the canary rule needs of the routing: read it, and return to the champion alone. */
export interface RolloutControl {
  canaryOf(model: string): Promise<{ champion: string; canary: string } | null>;
  endCanary(model: string, reason: string): Promise<void>;
}

export interface CanaryGuardOptions {
  rule: CanaryRule;
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
    const verdict = judgeCanary(champion.quality, canary.quality, options.rule);
    if (verdict.kind !== 'rollback') {
      // At debug: every pass, a wait or a keep is the usual state of a canary, not news.
      options.logger.debug({ model, canary: routing.canary, champion: routing.champion, verdict: verdict.kind }, verdict.reason);
      continue;
    }
    const reason = `automatic rollback of canary ${routing.canary}: ${verdict.reason}`;
    await options.control.endCanary(model, reason);
    options.rolledBack(model);
    options.logger.error({ model, canary: routing.canary, champion: routing.champion }, reason);
  }
}
