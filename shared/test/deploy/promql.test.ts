/**
 * Every PromQL expression of the dashboards and the alert rules parses (no error node in the
 * lezer-promql tree) and selects only metrics that the services register, or that Prometheus
 * writes itself for every target it scrapes (`up`).
 */
import { describe, expect, it } from 'vitest';
import { dashboards } from '../../../deploy/grafana/build.js';
import { dashboardExpressions, exposedMetrics, parsePromql, ruleExpressions, withoutGrafanaVariables } from './promql.js';

/** The series Prometheus writes for each target it scrapes (1 when the scrape succeeded). */
const SCRAPE_SERIES = ['up'];

describe('PromQL of the dashboards and alert rules', () => {
  const expressions = [...dashboardExpressions(), ...ruleExpressions()];

  it('finds the expressions (panels and rules)', async () => {
    expect(dashboardExpressions().length).toBeGreaterThan(30);
    expect(ruleExpressions().length).toBeGreaterThan(10);
  });

  it('reads the metric names from the services, histograms with their series', async () => {
    const metrics = await exposedMetrics();
    expect(metrics).toContain('tributary_predictions_total');
    expect(metrics).toContain('tributary_prediction_duration_seconds_bucket');
    expect(metrics).toContain('tributary_feature_drift');
    expect(metrics).toContain('tributary_dead_letter_records_total');
    expect(metrics).not.toContain('tributary_predictions_total_bucket');
  });

  it('the syntax check catches a broken expression and names the metrics', () => {
    expect(parsePromql('sum(rate(tributary_predictions_total[5m]').errors).not.toEqual([]);
    expect(parsePromql('sum by (le) (rate(x_bucket{a="b"}[5m])) / on () y offset 1d').metrics).toEqual(['x_bucket', 'y']);
    expect(withoutGrafanaVariables('rate(x[$__rate_interval])')).toBe('rate(x[5m])');
  });

  for (const { where, expr } of expressions) {
    it(`${where}: parses and selects existing metrics`, async () => {
      const { errors, metrics } = parsePromql(expr);
      expect(errors, `${expr}`).toEqual([]);
      expect(metrics.length, `${expr} selects no metric`).toBeGreaterThan(0);
      const known = new Set([...(await exposedMetrics()), ...SCRAPE_SERIES]);
      for (const name of metrics) expect(known, `${where}: ${name} is not registered by any service`).toContain(name);
    });
  }

  it('template variables query existing metrics', async () => {
    const known = await exposedMetrics();
    for (const dashboard of Object.values(dashboards)) {
      for (const variable of dashboard.templating?.list ?? []) {
        if (variable.type !== 'query') continue;
        const q = typeof variable.query === 'string' ? variable.query : String(variable.query?.query);
        const m = /^label_values\((\w+), (\w+)\)$/.exec(q);
        expect(m, q).not.toBeNull();
        expect(known).toContain(m![1]);
      }
    }
  });
});
