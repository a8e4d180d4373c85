/**
 * The continual-learning loop end to end on the real broker and Redis (scripts/lib/retrain-scenario.ts,
 * the loop `npm run scenario:retrain` prints): the simulator injects concept drift, the champion's
 * quality drops, a retrain from the prediction log and its labels registers a new version that
 * starts in shadow, the shadow beats the champion on the same requests, and once promoted the new
 * champion's quality is back up. The monitor shows both variants side by side.
 */
import { describe, expect, it } from 'vitest';
import { runRetrainScenario, type ScenarioReport } from '../../scripts/lib/retrain-scenario.js';
import { realServices } from './services.js';

const services = realServices();
const ready = Boolean(services.kafkaBrokers && services.redisUrl);

const auc = (report: ScenarioReport, step: string, model: string): number => {
  const phase = report.phases.find((p) => p.step === step && p.model === model);
  expect(phase?.figures, `${step}, ${model}: labelled predictions of both classes`).not.toBeNull();
  return phase!.figures!.auc;
};

describe.skipIf(!ready)('the drift -> retrain -> shadow -> promote loop (real broker and Redis)', () => {
  it('detects the drop, retrains, shadows, promotes, and quality recovers', { timeout: 300_000 }, async () => {
    const lines: string[] = [];
    const report = await runRetrainScenario({
      rate: 200,
      phaseMs: 12_000,
      algorithm: 'gbt',
      env: {
        KAFKA_BROKERS: services.kafkaBrokers!.join(','),
        REDIS_URL: services.redisUrl!,
        LOG_LEVEL: 'error',
      },
      say: (line = '') => lines.push(line),
    });
    console.log(lines.join('\n'));

    expect(report.simulator.scoreErrors).toBe(0);
    // The concept drift: the champion's quality drops.
    const before = auc(report, '1 no drift', 'v1 champion');
    const drifted = auc(report, '2 concept drift', 'v1 champion');
    expect(before - drifted).toBeGreaterThan(0.15);

    // Retrained, registered, and started as a shadow: scored on the same requests, never answering.
    const v2 = report.retrain.version;
    expect(v2).toBe('2');
    expect(report.retrain.routing.shadows).toContain(v2);
    expect(report.retrain.routing.champion).toBe('1');
    const championInShadowPhase = auc(report, '3 shadow', 'v1 champion');
    const shadow = auc(report, '3 shadow', `v${v2} shadow`);
    expect(shadow - championInShadowPhase).toBeGreaterThan(0.1);
    // The monitor shows the shadow beside the champion.
    expect(report.monitor[3].map((r) => `${r.version} ${r.variant}`)).toEqual(expect.arrayContaining(['1 champion', `${v2} shadow`]));

    // Promoted: the new champion answers, and its quality is back above the drifted champion's.
    expect(report.promoted.champion).toBe(v2);
    expect(report.promoted.previous).toContain('1');
    const recovered = auc(report, '4 promoted', `v${v2} champion`);
    expect(recovered - drifted).toBeGreaterThan(0.1);
    expect(report.monitor[4].map((r) => `${r.version} ${r.variant}`)).toContain(`${v2} champion`);
  });
});
