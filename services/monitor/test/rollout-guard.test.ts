/** The monitor's part in rollouts: the canary rule, and bandit rewards from labelled predictions. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRewardStore, MemoryRoutingStore, type Routing } from '@tributary/inference/routing';
import {
  createLogger,
  createRandom,
  createRegistry,
  MemoryEventLog,
  QualityAccumulator,
  TributaryError,
  type Random,
} from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { rolloutControl } from '../src/connections.js';
import { MemoryJoinStore } from '../src/join-store.js';
import { startMonitor, type Monitor } from '../src/monitor.js';
import { BanditRewards, judgeCanary, proportionStdError, rocAucStdError, type CanaryRule } from '../src/rollout-guard.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
let monitor: Monitor | null = null;
afterEach(async () => {
  await monitor?.stop();
  monitor = null;
});

/** The quality of n predictions, a share `right` of them on the right side of 0.5. */
function quality(n: number, right: number) {
  const q = new QualityAccumulator({ threshold: 0.5 });
  for (let i = 0; i < n; i++) {
    const label = i % 2 === 0 ? 1 : 0;
    const correct = i < n * right;
    q.add(correct === (label === 1) ? 0.9 - (i % 7) / 100 : 0.1 + (i % 7) / 100, label);
  }
  return q.summary();
}

/**
 * The canary rule as the monitor runs it, on `hours` of two simulated streams: a look every
 * 15 s at the 1h window of one-minute buckets (the 60 minutes before and the one under way),
 * 240 looks an hour. Each stream has 3% positives and a binormal score: logits of positives
 * `shift` standard deviations above those of negatives, a ROC AUC of Phi(shift / sqrt 2).
 * Returns the hours in which some look rolled the canary back.
 */
function hoursRolledBack(options: { seed: number; hours: number; rule: CanaryRule; champion: Stream; canary: Stream }): number[] {
  const random = createRandom(options.seed);
  const fresh = () => new QualityAccumulator({ threshold: 0.5 });
  const sides = [options.champion, options.canary].map((stream) => ({ stream, minutes: [] as QualityAccumulator[] }));
  const rolledBack = new Set<number>();
  for (let minute = 0; minute < options.hours * 60; minute++) {
    const before = sides.map((side) => side.minutes.reduce((a, b) => a.merge(b), fresh()));
    const current = sides.map(fresh);
    for (let look = 0; look < 4; look++) {
      sides.forEach((side, i) => draw(random, side.stream, current[i]!));
      const [champion, canary] = sides.map((_, i) => before[i]!.merge(current[i]!).summary());
      if (judgeCanary(champion!, canary!, options.rule, 240).kind === 'rollback') rolledBack.add(Math.floor(minute / 60));
    }
    sides.forEach((side, i) => {
      side.minutes.push(current[i]!);
      if (side.minutes.length > 60) side.minutes.shift();
    });
  }
  return [...rolledBack];
}

interface Stream {
  perHour: number;
  shift: number;
}
/** Shifts of a ROC AUC of 0.9 and 0.8: sqrt(2) Phi^-1(AUC). */
const AUC_90 = 1.812387605;
const AUC_80 = 1.190232337;

/** The labelled predictions of 15 s of a stream. */
function draw(random: Random, stream: Stream, into: QualityAccumulator): void {
  const expected = stream.perHour / 240;
  const n = Math.floor(expected) + (random.next() < expected % 1 ? 1 : 0);
  for (let i = 0; i < n; i++) {
    const positive = random.next() < 0.03;
    const logit = -3.5 + 1.5 * (random.normal() + (positive ? stream.shift : 0));
    into.add(1 / (1 + Math.exp(-logit)), positive ? 1 : 0);
  }
}

describe('the canary rule', () => {
  const rule: CanaryRule = { metric: 'accuracy', margin: 0.05, minPerClass: 30, confidence: 0.99 };

  it('waits for enough positives and negatives on both sides, keeps a canary not worse by more than the margin beyond sampling error', () => {
    const wait = judgeCanary(quality(500, 0.9), quality(50, 0.1), rule);
    expect(wait).toEqual({
      kind: 'wait',
      reason: '25 positive and 25 negative canary labels, 250 and 250 champion ones (30 of each needed on each side)',
    });
    expect(judgeCanary(quality(500, 0.9), quality(400, 0.88), rule).kind).toBe('keep');
    // 0.1 behind on 100 labels each: a standard error of sqrt(0.09 / 100 + 0.16 / 100) = 0.05, z = (0.1 - 0.05) / 0.05 = 1.
    const close = judgeCanary(quality(100, 0.9), quality(100, 0.8), rule);
    expect(close.kind).toBe('keep');
    expect(close.reason).toMatch(/the champion's lead 0\.1000 ± 0\.0500 \(standard error\) beyond the margin 0\.05 at p = 0\.16 /);
    // 0.2 behind on 400 and 500: z = 0.15 / sqrt(0.09 / 500 + 0.21 / 400) = 5.65, beyond even 240 looks' share of 1%.
    const verdict = judgeCanary(quality(500, 0.9), quality(400, 0.7), rule, 240);
    expect(verdict.kind).toBe('rollback');
    expect(verdict.reason).toMatch(/accuracy 0\.7000 against the champion's 0\.9000 over 400 and 500 labelled predictions/);
    expect(verdict.reason).toMatch(/rolled back below 0\.000042: 1 - 0\.99 over 240 looks an hour/);
  });

  it('computes the standard errors by their formulas (Hanley-McNeil for the ROC AUC, binomial for a proportion)', () => {
    // A = 0.8, 50 positives, 200 negatives: Q1 = 0.8 / 1.2 = 2/3, Q2 = 2 * 0.64 / 1.8 = 32/45,
    // (0.16 + 49 (2/3 - 0.64) + 199 (32/45 - 0.64)) / (50 * 200) = (3514/225) / 10000 = 0.00156177...
    expect(Math.abs(rocAucStdError(0.8, 50, 200) - 0.03951933422741048)).toBeLessThan(1e-9);
    // A = 0.93, 30 positives, 970 negatives: Q1 = 93/107, Q2 = 8649/9650, variance 0.00105105103769...
    expect(Math.abs(rocAucStdError(0.93, 30, 970) - 0.032419917299280565)).toBeLessThan(1e-9);
    expect(Math.abs(proportionStdError(0.9, 400) - 0.015)).toBeLessThan(1e-12);
  });

  it('tells a canary identical to its champion (kept through a day of looks every 15 s) from one 0.1 worse in ROC AUC (rolled back)', () => {
    const rule: CanaryRule = { metric: 'roc_auc', margin: 0.02, minPerClass: 30, confidence: 0.99 };
    // 2,000 canary and 18,000 champion labels an hour (60 and 540 positives). Judged on the gap
    // alone, as the rule once was, such a canary was rolled back in most of these hours.
    const hours = 24;
    const identical = hoursRolledBack({
      seed: 7,
      hours,
      rule,
      champion: { perHour: 18_000, shift: AUC_90 },
      canary: { perHour: 2_000, shift: AUC_90 },
    });
    expect(identical.length).toBeLessThanOrEqual(Math.floor(hours * (1 - rule.confidence)));
    // A ROC AUC of 0.8 against 0.9, on 10,000 canary labels an hour: rolled back within the first hour.
    const worse = hoursRolledBack({
      seed: 8,
      hours: 1,
      rule,
      champion: { perHour: 90_000, shift: AUC_90 },
      canary: { perHour: 10_000, shift: AUC_80 },
    });
    expect(worse).toEqual([0]);
  });

  it('does not judge on ROC AUC while either side is binned too coarsely for the margin (its error bound above it)', () => {
    const auc: CanaryRule = { ...rule, metric: 'roc_auc', margin: 0.02 };
    const side = (rocAuc: number, rocAucErrorBound: number) => ({ ...quality(500, 0.9), rocAuc, rocAucErrorBound });
    // Worse by 0.13 with tight bounds: rolled back; within the margin: kept.
    expect(judgeCanary(side(0.93, 0.005), side(0.8, 0.01), auc).kind).toBe('rollback');
    expect(judgeCanary(side(0.93, 0.005), side(0.92, 0.02), auc).kind).toBe('keep');
    // The same gap with the canary's bound (or the champion's) above the margin: no verdict either way.
    const verdict = judgeCanary(side(0.93, 0.005), side(0.8, 0.03), auc);
    expect(verdict).toEqual({
      kind: 'wait',
      reason:
        "roc_auc 0.8000 against the champion's 0.9300 is binned: its error bound (0.0300 canary, 0.0050 champion) is above the margin 0.02",
    });
    expect(judgeCanary(side(0.93, 0.09), side(0.8, 0.01), auc).kind).toBe('wait');
    expect(judgeCanary(side(0.93, 0.09), side(0.93, 0.01), auc).kind).toBe('wait');
    // Other metrics are exact on the stream: the bound does not hold them back.
    expect(judgeCanary(side(0.93, 0.09), { ...quality(400, 0.7), rocAucErrorBound: 0.09 }, rule).kind).toBe('rollback');
  });

  it('reads log loss the other way round (lower is better)', () => {
    const good = quality(500, 0.95);
    const bad = quality(500, 0.6);
    expect(judgeCanary(good, bad, { ...rule, metric: 'log_loss' }).kind).toBe('rollback');
    expect(judgeCanary(bad, good, { ...rule, metric: 'log_loss' }).kind).toBe('keep');
  });
});

describe('bandit rewards', () => {
  it('count the labelled bandit predictions of each version, rewarding a right decision at the threshold', async () => {
    const rewards = new BanditRewards();
    const p = (version: string, score: number, variant = 'bandit') => ({ model: 'm', version, variant, score });
    rewards.observe(p('1', 0.9), 1, 0.5); // right
    rewards.observe(p('1', 0.9), 0, 0.5); // wrong
    rewards.observe(p('2', 0.3), 0, 0.5); // right
    rewards.observe(p('2', 0.3), 0, 0.2); // wrong at its own threshold
    rewards.observe(p('3', 0.9, 'champion'), 1, 0.5); // not a bandit draw
    const store = new MemoryRewardStore();
    await rewards.flush((model, version, trials, reward) => store.add(model, version, trials, reward));
    expect(await store.get('m')).toEqual({ '1': { trials: 2, reward: 1 }, '2': { trials: 2, reward: 1 } });
    // Nothing twice; what a failed store did not take is kept for the next flush.
    rewards.observe(p('1', 0.9), 1, 0.5);
    await expect(rewards.flush(() => Promise.reject(new Error('down')))).rejects.toThrow(/kept for the next try/);
    await rewards.flush((model, version, trials, reward) => store.add(model, version, trials, reward));
    expect(await store.get('m')).toEqual({ '1': { trials: 3, reward: 2 }, '2': { trials: 2, reward: 1 } });
    // A store that took the write but did not answer in time: not tried again (at most once).
    rewards.observe(p('2', 0.3), 0, 0.5);
    const slow = async (model: string, version: string, trials: number, reward: number) => {
      await store.add(model, version, trials, reward);
      throw new TributaryError('ROUTING_STORE_UNAVAILABLE', 'no answer', { cause: new Error('Command timed out') });
    };
    await expect(rewards.flush(slow)).rejects.toThrow(/perhaps stored, not tried again/);
    await rewards.flush((model, version, trials, reward) => store.add(model, version, trials, reward));
    expect(await store.get('m')).toEqual({ '1': { trials: 3, reward: 2 }, '2': { trials: 3, reward: 2 } });
  });
});

describe('the monitor with rollouts', () => {
  it('rolls a failing canary back (audited, counted) and stores bandit rewards from labelled predictions', async () => {
    const routes = new MemoryRoutingStore();
    const rewards = new MemoryRewardStore();
    const routing: Routing = {
      model: 'fraud_detector',
      champion: '1',
      previous: [],
      policy: { kind: 'canary', version: '2', percent: 20 },
      shadows: ['3'],
      revision: 1,
      updated_at: new Date().toISOString(),
      updated_by: 'ops',
      reason: 'try v2',
    };
    expect(
      (
        await routes.update(routing, 0, {
          at: routing.updated_at,
          by: 'ops',
          action: 'rollout',
          reason: 'try v2',
          from: null,
          to: 'x',
          revision: 1,
        })
      ).ok,
    ).toBe(true);
    const eventLog = new MemoryEventLog();
    const registry = createRegistry({ defaultMetrics: false });
    monitor = await startMonitor({
      eventLog,
      topics: { predictions: 'predictions', labels: 'labels', deadLetter: 'dead-letter' },
      groupId: 'monitor-rollouts',
      registry,
      logger: createLogger('test', 'silent'),
      joins: new MemoryJoinStore(DAY, HOUR),
      joinWindowMs: DAY,
      thresholdOf: () => 0.5,
      profileOf: () => null,
      maxSeries: 10,
      rollouts: {
        addReward: (model, version, trials, reward) => rewards.add(model, version, trials, reward),
        canary: {
          rule: { metric: 'accuracy', margin: 0.05, minPerClass: 30, confidence: 0.99 },
          control: rolloutControl(routes),
          intervalMs: 900_000,
        },
      },
    });
    const now = Date.now();
    const predictions = [];
    const labels = [];
    for (let i = 0; i < 600; i++) {
      const label = i % 2;
      // The champion (v1) is right 9 times in 10, the canary (v2) 6 in 10, the bandit arm (v4) every time.
      const [version, variant, right] =
        i < 300 ? ['1', 'champion', i % 10 !== 0] : i < 450 ? ['2', 'canary', i % 10 < 6] : ['4', 'bandit', true];
      const score = right === (label === 1) ? 0.8 : 0.2;
      predictions.push({
        key: `r${i}`,
        value: JSON.stringify({
          prediction_id: `p${i}`,
          request_id: `r${i}`,
          model: { name: 'fraud_detector', version },
          variant,
          score,
          predicted_at: now,
          latency_ms: 1,
        }),
      });
      labels.push({ key: `r${i}`, value: JSON.stringify({ request_id: `r${i}`, label, ts: now + 1000 }) });
    }
    await eventLog.publish('predictions', predictions);
    await eventLog.publish('labels', labels);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 600/.test(await registry.metrics()), {
      what: 'every label joined',
    });
    expect(await rewards.get('fraud_detector')).toEqual({ '4': { trials: 150, reward: 150 } });

    await monitor.checkCanary();
    const after = (await routes.get('fraud_detector'))!;
    expect(after).toMatchObject({ champion: '1', policy: { kind: 'champion' }, shadows: ['3'], revision: 2, updated_by: 'monitor' });
    expect(after.reason).toMatch(/^automatic rollback of canary 2: canary accuracy 0\.6000 against the champion's 0\.9000/);
    // Passes every 15 minutes: each is held to a quarter of the hour's 1%.
    expect(after.reason).toMatch(/rolled back below 0\.0025: 1 - 0\.99 over 4 looks an hour\)$/);
    const [entry] = await routes.audit('fraud_detector', 1);
    expect(entry).toMatchObject({
      action: 'auto_rollback',
      by: 'monitor',
      from: 'champion 1; canary 2 at 20%; shadows 3',
      to: 'champion 1; shadows 3',
    });
    expect(await registry.metrics()).toMatch(/tributary_canary_rollbacks_total\{model="fraud_detector"\} 1/);
    // Nothing more to roll back.
    await monitor.checkCanary();
    expect((await routes.get('fraud_detector'))!.revision).toBe(2);
  });

  it('ends only the canary it judged: a rollout set meanwhile stays', async () => {
    const routes = new MemoryRoutingStore();
    const at = new Date().toISOString();
    const base = { model: 'fraud_detector', champion: '1', previous: [], shadows: [], updated_at: at, updated_by: 'ops', reason: 'r' };
    const audit = (revision: number) => ({ at, by: 'ops', action: 'rollout' as const, reason: 'r', from: null, to: 'x', revision });
    const canary: Routing = { ...base, policy: { kind: 'canary', version: '2', percent: 20 }, revision: 1 };
    expect((await routes.update(canary, 0, audit(1))).ok).toBe(true);
    const control = rolloutControl(routes);
    const judged = (await control.canaryOf('fraud_detector'))!;
    expect(judged).toEqual({ champion: '1', canary: '2', revision: 1 });
    // An operator starts an A/B test between the rule's read and its rollback.
    const ab: Routing = {
      ...base,
      policy: {
        kind: 'ab',
        arms: [
          { version: '1', weight: 1 },
          { version: '3', weight: 1 },
        ],
      },
      revision: 2,
    };
    expect((await routes.update(ab, 1, audit(2))).ok).toBe(true);
    expect(await control.endCanary('fraud_detector', judged, 'automatic rollback of canary 2: worse')).toBe(false);
    expect(await routes.get('fraud_detector')).toMatchObject({ revision: 2, policy: { kind: 'ab' } });
    // The canary it judged, still in force, is ended.
    const again: Routing = { ...canary, revision: 3 };
    expect((await routes.update(again, 2, audit(3))).ok).toBe(true);
    const now = (await control.canaryOf('fraud_detector'))!;
    expect(await control.endCanary('fraud_detector', now, 'automatic rollback of canary 2: worse')).toBe(true);
    expect(await routes.get('fraud_detector')).toMatchObject({ revision: 4, policy: { kind: 'champion' }, updated_by: 'monitor' });
  });
});
