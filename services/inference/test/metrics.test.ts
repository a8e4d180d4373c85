/**
 * The inference service's counters with a known set of label values are exported at 0 from
 * the start: Prometheus sees no increase() or rate() on a series whose first sample is already
 * 1, so the first rejected reload, shed request or dropped log record would raise no alert.
 */
import { describe, expect, it } from 'vitest';
import { createRegistry, MemoryOnlineStore } from '@tributary/shared';
import { inferenceMetrics } from '../src/metrics.js';
import { buildTestApp, validRequest } from './build.js';

describe('inference metrics', () => {
  it('export every known outcome and reason at 0 before anything happens', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    inferenceMetrics(registry);
    const text = await registry.metrics();
    for (const series of [
      'tributary_model_reloads_total{outcome="loaded"} 0',
      'tributary_model_reloads_total{outcome="rejected"} 0',
      'tributary_prediction_log_records_total{outcome="published"} 0',
      'tributary_prediction_log_records_total{outcome="dropped"} 0',
      'tributary_requests_shed_total{reason="event_loop_delay"} 0',
      'tributary_requests_shed_total{reason="model_queue_full"} 0',
      'tributary_requests_denied_total{reason="missing_key"} 0',
      'tributary_requests_denied_total{reason="invalid_key"} 0',
      'tributary_requests_denied_total{reason="admin_disabled"} 0',
      'tributary_http_server_errors_total{code="INTERNAL"} 0',
      'tributary_http_server_errors_total{code="ONLINE_STORE_UNAVAILABLE"} 0',
      'tributary_http_server_errors_total{code="EVENT_LOG_UNAVAILABLE"} 0',
    ]) {
      expect(text).toContain(series);
    }
  });

  it("export a started version's model-run failures at 0, for each reason, before any run fails", async () => {
    const { app, registry } = await buildTestApp();
    try {
      const text = await registry.metrics();
      expect(text).toContain('tributary_model_run_failures_total{model="fraud_detector",version="1",reason="crash"} 0');
      expect(text).toContain('tributary_model_run_failures_total{model="fraud_detector",version="1",reason="timeout"} 0');
    } finally {
      await app.close();
    }
  });

  it('count from there', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const metrics = inferenceMetrics(registry);
    metrics.serving.reloaded('rejected');
    metrics.access.denied('invalid_key');
    // built twice on one registry (the embedded default), the counts are kept
    inferenceMetrics(registry);
    const text = await registry.metrics();
    expect(text).toContain('tributary_model_reloads_total{outcome="rejected"} 1');
    expect(text).toContain('tributary_requests_denied_total{reason="invalid_key"} 1');
  });

  it('count the 5xx answers by code, apart from shed requests', async () => {
    const store = new MemoryOnlineStore();
    store.read = () => Promise.reject(new Error('connection refused'));
    const { app, registry } = await buildTestApp({ store, env: { MODEL_QUEUE_MAX_ROWS: '1', PREDICT_BATCH_MAX_ROWS: '1' } });
    try {
      const failed = await app.inject({ method: 'GET', url: '/v1/features/user_id/u_1' });
      expect(failed.statusCode).toBe(503);
      expect(failed.json()).toMatchObject({ code: 'ONLINE_STORE_UNAVAILABLE' });
      // A shed request (two one-row batches of one turn for a queue of one row) is not a server error.
      const batch = (id: string) =>
        app.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [{ ...validRequest, request_id: id }] } });
      const statuses = (await Promise.all([batch('a'), batch('b')])).map((r) => r.statusCode);
      expect(statuses).toEqual([200, 503]);
      const text = await registry.metrics();
      expect(text).toContain('tributary_http_server_errors_total{code="ONLINE_STORE_UNAVAILABLE"} 1');
      expect(text).toContain('tributary_requests_shed_total{reason="model_queue_full"} 1');
      expect(text).not.toContain('tributary_http_server_errors_total{code="OVERLOADED"}');
    } finally {
      await app.close();
    }
  });
});
