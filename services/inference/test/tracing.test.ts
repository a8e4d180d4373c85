/**
 * Tracing of predictions, through the whole app: the spans a request makes reach an OTLP
 * receiver with their parents and attributes, log lines carry the trace id, and with no
 * endpoint configured no span is made at all.
 */
import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createRegistry,
  loadConfig,
  MemoryEventLog,
  MemoryOnlineStore,
  startTracing,
  tracingEnabled,
  type EntityKey,
  type OnlineStore,
  type Tracing,
} from '@tributary/shared';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../test/support/otlp-receiver.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { createInferenceApp } from '../src/service.js';
import { validRequest } from './build.js';
import { logisticVersion, tempRegistry } from './models.js';

const SERVER = 2; // OTLP SpanKind SPAN_KIND_SERVER
const ERROR = 2; // OTLP StatusCode STATUS_CODE_ERROR

let receiver: OtlpReceiver | null = null;
let tracing: Tracing | null = null;
let app: Awaited<ReturnType<typeof createInferenceApp>> | null = null;
afterEach(async () => {
  await app?.close();
  await tracing?.stop();
  await receiver?.close();
  app = tracing = receiver = null;
});

/** Boots tracing (as a service's main does) and the app, with log lines kept. */
async function boot(options: { env?: Record<string, string>; store?: OnlineStore; traced?: boolean } = {}) {
  receiver = await startOtlpReceiver();
  const env = { LOG_LEVEL: 'info', SHED_EVENT_LOOP_DELAY_MS: '0', ...options.env };
  const config = loadConfig(options.traced === false ? env : { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, ...env });
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      callback();
    },
  });
  const logger = createLogger('test', config.LOG_LEVEL, destination);
  tracing = await startTracing(config, { service: 'tributary-inference', logger });
  app = await createInferenceApp(config, {
    eventLog: new MemoryEventLog(),
    store: options.store ?? new MemoryOnlineStore(),
    registry: createRegistry({ defaultMetrics: false }),
    logger,
  });
  return { app, lines, receiver, tracing };
}

/** The spans of the trace whose server span is named `name`, once it and `children` children are exported. */
async function traceOf(
  name: string,
  children: number,
  which: (span: ReceivedSpan) => boolean = () => true,
): Promise<{ server: ReceivedSpan; children: ReceivedSpan[] }> {
  return waitFor(
    async () => {
      await tracing!.flush();
      const server = receiver!.spans.find((s) => s.name === name && which(s));
      if (!server) return null;
      const below = receiver!.spans.filter((s) => s.parentSpanId === server.spanId);
      return below.length >= children ? { server, children: below } : null;
    },
    { what: `the spans of ${name}` },
  );
}

/** Two one-row batches sent together to a queue of one row: the first is scored, the second shed; returns the second. */
async function shedOneOfTwoBatches() {
  const [scored, shed] = await Promise.all(
    [0, 1].map((i) =>
      app!.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows: [{ ...validRequest, request_id: `q-${i}` }] } }),
    ),
  );
  expect(scored!.statusCode).toBe(200);
  return shed!;
}

const byName = (spans: ReceivedSpan[]) => Object.fromEntries(spans.map((s) => [s.name, s]));

describe('tracing of predictions', () => {
  it('makes a server span per request with validation, feature_fetch, model_run and log_publish children', async () => {
    await boot();
    const response = await app!.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(response.statusCode).toBe(200);
    const { server, children } = await traceOf('POST /v1/predict', 4);

    expect(server).toMatchObject({ service: 'tributary-inference', kind: SERVER, parentSpanId: '' });
    expect(server.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/predict',
      'http.response.status_code': 200,
      'tributary.model.name': 'fraud_detector',
      'tributary.model.version': '1',
      'tributary.model.variant': 'champion',
      'tributary.rows': 1,
      'tributary.degraded': false,
    });
    expect(children.map((s) => s.name).sort()).toEqual(['feature_fetch', 'log_publish', 'model_run', 'validation']);
    for (const child of children) {
      expect(child.traceId).toBe(server.traceId);
      expect(child.status.code ?? 0).not.toBe(ERROR);
    }
    const spans = byName(children);
    const scoring = { 'tributary.model.name': 'fraud_detector', 'tributary.model.version': '1', 'tributary.model.variant': 'champion' };
    expect(spans.feature_fetch!.attributes).toMatchObject({ ...scoring, 'tributary.entity_keys': 2, 'tributary.degraded': false });
    expect(spans.model_run!.attributes).toMatchObject({ ...scoring, 'tributary.rows': 1 });
    expect(spans.log_publish!.attributes).toMatchObject({ ...scoring, 'tributary.rows': 1 });
  });

  it("joins the caller's trace when the request carries a traceparent header", async () => {
    await boot();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const response = await app!.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { traceparent: `00-${traceId}-${parent}-01` },
      payload: validRequest,
    });
    expect(response.statusCode).toBe(200);
    const { server, children } = await traceOf('POST /v1/predict', 4);
    expect(server.traceId).toBe(traceId);
    expect(server.parentSpanId).toBe(parent);
    expect(children.every((s) => s.traceId === traceId)).toBe(true);
  });

  it('traces a batch: one span for its rows, with the same children', async () => {
    await boot();
    const rows = [0, 1, 2].map((i) => ({ ...validRequest, request_id: `b-${i}`, entities: { user_id: `u_${i}`, merchant_id: 'm_1' } }));
    const response = await app!.inject({ method: 'POST', url: '/v1/predict/batch', payload: { rows } });
    expect(response.statusCode).toBe(200);
    const { server, children } = await traceOf('POST /v1/predict/batch', 4);
    expect(server.attributes).toMatchObject({ 'http.route': '/v1/predict/batch', 'tributary.rows': 3, 'tributary.model.version': '1' });
    const spans = byName(children);
    expect(Object.keys(spans).sort()).toEqual(['feature_fetch', 'log_publish', 'model_run', 'validation']);
    expect(spans.feature_fetch!.attributes['tributary.entity_keys']).toBe(6);
    expect(spans.model_run!.attributes['tributary.rows']).toBe(3);
  });

  it('marks a request the schema refused: failed validation span, status 400, no scoring spans', async () => {
    await boot();
    const response = await app!.inject({ method: 'POST', url: '/v1/predict', payload: { ...validRequest, surprise: 1 } });
    expect(response.statusCode).toBe(400);
    const { server, children } = await traceOf('POST /v1/predict', 1);
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 400, 'error.type': 'VALIDATION_FAILED' });
    // A client error is not a failure of the server span.
    expect(server.status.code ?? 0).not.toBe(ERROR);
    expect(children.map((s) => s.name)).toEqual(['validation']);
    expect(children[0]!.status).toMatchObject({ code: ERROR, message: expect.stringMatching(/additional properties/) });
  });

  it('marks a degraded prediction: the failed feature fetch, and degraded on the request span', async () => {
    const broken: OnlineStore = Object.assign(new MemoryOnlineStore(), {
      read: async (_keys: EntityKey[]) => {
        throw new Error('connection refused');
      },
    });
    await boot({ store: broken });
    const response = await app!.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(response.json().degraded).toBe(true);
    const { server, children } = await traceOf('POST /v1/predict', 4);
    expect(server.attributes['tributary.degraded']).toBe(true);
    const fetch = byName(children).feature_fetch!;
    expect(fetch.status).toMatchObject({ code: ERROR, message: 'connection refused' });
    expect(fetch.events).toContain('exception');
    expect(fetch.attributes['tributary.degraded']).toBe(true);
  });

  it("puts the request's trace id and span id on its log lines", async () => {
    // A queue of one row refuses the second of two batches of one turn: the shed is logged (at debug) by the error handler.
    const { lines } = await boot({ env: { MODEL_QUEUE_MAX_ROWS: '1', PREDICT_BATCH_MAX_ROWS: '1', LOG_LEVEL: 'debug' } });
    expect((await shedOneOfTwoBatches()).statusCode).toBe(503);
    const { server, children } = await traceOf('POST /v1/predict/batch', 3, (span) => span.status.code === ERROR);
    expect(server.status.code).toBe(ERROR);
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': 'OVERLOADED' });
    expect(byName(children).model_run!.status.code).toBe(ERROR);
    const logged = lines.find((line) => typeof line.msg === 'string' && line.msg.includes('model queue is full'));
    expect(logged).toMatchObject({ trace_id: server.traceId, span_id: server.spanId });
    // Lines logged outside any request carry no trace fields.
    expect(lines.filter((line) => line !== logged).every((line) => line.trace_id === undefined)).toBe(true);
  });

  it('traces a shadow scoring as a shadow child of the request, with its own steps', async () => {
    const admin = 'ops-admin-secret-0001';
    await boot({ env: { MODEL_REGISTRY_DIR: tempRegistry(), ADMIN_API_KEYS: `ops:${admin}` } });
    const headers = { authorization: `Bearer ${admin}` };
    const v2 = logisticVersion('2', 0.01, -1);
    const registered = await app!.inject({
      method: 'POST',
      url: '/admin/models/fraud_detector/versions',
      headers,
      payload: { manifest: v2.manifest, model_base64: v2.bytes.toString('base64') },
    });
    expect(registered.statusCode).toBe(201);
    const rollout = { policy: { kind: 'champion' }, shadows: ['2'], reason: 'shadow v2' };
    expect((await app!.inject({ method: 'POST', url: '/admin/models/fraud_detector/rollout', headers, payload: rollout })).statusCode).toBe(
      200,
    );
    expect((await app!.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).statusCode).toBe(200);
    const { server, children } = await traceOf('POST /v1/predict', 5);
    expect(children.map((s) => s.name).sort()).toEqual(['feature_fetch', 'log_publish', 'model_run', 'shadow', 'validation']);
    const shadow = byName(children).shadow!;
    expect(shadow.attributes).toMatchObject({ 'tributary.model.version': '2', 'tributary.model.variant': 'shadow' });
    // The answer's attributes are the champion's.
    expect(server.attributes).toMatchObject({ 'tributary.model.version': '1', 'tributary.model.variant': 'champion' });
    const steps = await waitFor(
      async () => {
        await tracing!.flush();
        const below = receiver!.spans.filter((s) => s.parentSpanId === shadow.spanId);
        return below.length >= 2 ? below : null;
      },
      { what: "the shadow's steps" },
    );
    // The shadow needs the same entities' features: it scores the states the request read, no fetch of its own.
    expect(steps.map((s) => s.name).sort()).toEqual(['log_publish', 'model_run']);
    expect(steps.every((s) => s.traceId === server.traceId && s.attributes['tributary.model.variant'] === 'shadow')).toBe(true);
  });

  it('with no endpoint configured, makes no span, exports nothing and logs no trace id', async () => {
    const activeAtRead: unknown[] = [];
    const store: OnlineStore = Object.assign(new MemoryOnlineStore(), {
      read(this: MemoryOnlineStore, keys: EntityKey[]) {
        activeAtRead.push(trace.getActiveSpan());
        return MemoryOnlineStore.prototype.read.call(this, keys);
      },
    });
    const { lines } = await boot({
      traced: false,
      store,
      env: { MODEL_QUEUE_MAX_ROWS: '1', PREDICT_BATCH_MAX_ROWS: '1', LOG_LEVEL: 'debug' },
    });
    expect(tracing!.endpoint).toBeNull();
    expect(tracingEnabled()).toBe(false);
    expect((await app!.inject({ method: 'POST', url: '/v1/predict', payload: validRequest })).statusCode).toBe(200);
    expect((await shedOneOfTwoBatches()).statusCode).toBe(503);
    await tracing!.flush();
    expect(activeAtRead).toEqual([undefined, undefined, undefined]);
    expect(lines.some((line) => typeof line.msg === 'string' && line.msg.includes('model queue is full'))).toBe(true);
    expect(lines.every((line) => line.trace_id === undefined)).toBe(true);
    expect(receiver!.requests).toBe(0);
  });
});
