/** The monitor's part in rollouts: the canary rule, and bandit rewards from labelled predictions. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRewardStore, MemoryRoutingStore, type Routing } from '@tributary/inference/routing';
import { createLogger, createRegistry, MemoryEventLog, QualityAccumulator } from '@tributary/shared';
import { waitFor } from '../../../test/support/wait-for.js';
import { rolloutControl } from '../src/connections.js';
import { MemoryJoinStore } from '../src/join-store.js';
import { startMonitor, type Monitor } from '../src/monitor.js';
import { BanditRewards, judgeCanary } from '../src/rollout-guard.js';

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

describe('the canary rule', () => {
  const rule = { metric: 'accuracy' as const, margin: 0.05, minLabels: 100 };

  it('waits for enough labels on both sides, keeps a canary within the margin, rolls back one beyond it', () => {
    expect(judgeCanary(quality(500, 0.9), quality(50, 0.1), rule).kind).toBe('wait');
    expect(judgeCanary(quality(500, 0.9), quality(400, 0.88), rule).kind).toBe('keep');
    const verdict = judgeCanary(quality(500, 0.9), quality(400, 0.7), rule);
    expect(verdict.kind).toBe('rollback');
    expect(verdict.reason).toMatch(/accuracy 0\.7000 against the champion's 0\.9000 over 400 and 500 labelled predictions/);
  });

  it('does not judge on ROC AUC while either side is binned too coarsely for the margin (its error bound above it)', () => {
    const auc = { ...rule, metric: 'roc_auc' as const, margin: 0.02 };
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

  it('reads log loss and calibration error the other way round (lower is better)', () => {
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
        canary: { rule: { metric: 'accuracy', margin: 0.05, minLabels: 100 }, control: rolloutControl(routes), intervalMs: 3_600_000 },
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
});
