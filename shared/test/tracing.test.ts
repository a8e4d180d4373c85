/**
 * Tracing settings and helpers: the endpoint and sampling come from the configuration
 * (invalid values refused at start), spans nest, and log lines carry the active span's ids.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { inSpan, startSpan, startTracing, tracesEndpoint, tracingEnabled, type Tracing } from '../src/tracing.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../test/support/otlp-receiver.js';
import { waitFor } from '../../test/support/wait-for.js';

let receiver: OtlpReceiver | null = null;
let tracing: Tracing | null = null;
afterEach(async () => {
  await tracing?.stop();
  await receiver?.close();
  tracing = receiver = null;
});

function logLines() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, logger: createLogger('test', 'info', destination) };
}

describe('tracing configuration', () => {
  it('is off by default', () => {
    const config = loadConfig({});
    expect(tracesEndpoint(config)).toBeUndefined();
    expect(config.TRACING_SAMPLE_RATIO).toBe(1);
  });

  it('posts to <endpoint>/v1/traces, or to the traces endpoint as given, which wins', () => {
    expect(tracesEndpoint(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }))).toBe('http://collector:4318/v1/traces');
    expect(
      tracesEndpoint(
        loadConfig({
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/otlp',
        }),
      ),
    ).toBe('https://traces.example/otlp');
  });

  it('refuses an endpoint that is not an http(s) URL and a ratio outside 0..1, naming the variable', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' })).toThrow(ConfigError);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT="collector:4317": must start with http:\/\/ or https:\/\//,
    );
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' })).toThrow(
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="not a url": must be a URL/,
    );
    expect(() => loadConfig({ TRACING_SAMPLE_RATIO: '1.5' })).toThrow(/TRACING_SAMPLE_RATIO="1.5": must be a number between 0 and 1/);
    expect(() => loadConfig({ OTEL_SERVICE_NAME: ' ' })).toThrow(/OTEL_SERVICE_NAME=" ": must not be empty/);
  });
});

describe('tracing', () => {
  it('exports nested spans under the configured service name, and log lines carry the active ids', async () => {
    receiver = await startOtlpReceiver();
    tracing = await startTracing(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'checkout-scoring' }), {
      service: 'tributary-inference',
    });
    expect(tracing.endpoint).toBe(`${receiver.url}/v1/traces`);
    const { lines, logger } = logLines();
    await inSpan('outer', async (outer) => {
      outer?.setAttribute('step', 'outer');
      logger.info('inside');
      startSpan('leaf')?.end();
      await inSpan('inner', async () => {});
    });
    logger.info('outside');
    const spans = await waitFor(
      async () => {
        await tracing!.flush();
        return receiver!.spans.length >= 3 ? receiver!.spans : null;
      },
      { what: 'three spans' },
    );
    const outer = spans.find((s) => s.name === 'outer')!;
    expect(outer).toMatchObject({ service: 'checkout-scoring', parentSpanId: '', attributes: { step: 'outer' } });
    expect(spans.filter((s) => s.parentSpanId === outer.spanId).map((s) => s.name)).toEqual(['leaf', 'inner']);
    expect(lines[0]).toMatchObject({ msg: 'inside', trace_id: outer.traceId, span_id: outer.spanId });
    expect(lines[1]).toEqual(expect.objectContaining({ msg: 'outside' }));
    expect(lines[1]).not.toHaveProperty('trace_id');
  });

  it('records a failed span with the exception', async () => {
    receiver = await startOtlpReceiver();
    tracing = await startTracing(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }), { service: 'tributary-features' });
    await expect(
      inSpan('failing', async () => {
        throw new Error('broker down');
      }),
    ).rejects.toThrow('broker down');
    const span = await waitFor(async () => {
      await tracing!.flush();
      return receiver!.spans.find((s) => s.name === 'failing');
    });
    expect(span).toMatchObject({ service: 'tributary-features', status: { code: 2, message: 'broker down' }, events: ['exception'] });
  });

  it('with a sample ratio of 0, records and exports nothing (trace ids still reach the logs)', async () => {
    receiver = await startOtlpReceiver();
    tracing = await startTracing(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, TRACING_SAMPLE_RATIO: '0' }), {
      service: 'tributary-inference',
    });
    const { lines, logger } = logLines();
    await inSpan('unsampled', async (span) => {
      expect(span?.isRecording()).toBe(false);
      logger.info('inside');
    });
    await tracing.flush();
    expect(receiver.requests).toBe(0);
    expect(lines[0]!.trace_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('once stopped, makes no span, and can be started again (one process, one provider at a time)', async () => {
    receiver = await startOtlpReceiver();
    const config = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    tracing = await startTracing(config, { service: 'a' });
    expect(tracingEnabled()).toBe(true);
    await expect(startTracing(config, { service: 'b' })).rejects.toThrow(/already started/);
    await tracing.stop();
    expect(tracingEnabled()).toBe(false);
    expect(startSpan('after')).toBeUndefined();
    tracing = await startTracing(config, { service: 'c' });
    await inSpan('again', async () => {});
    await waitFor(async () => {
      await tracing!.flush();
      return receiver!.spans.find((s) => s.name === 'again' && s.service === 'c');
    });
  });

  it('without an endpoint, does nothing at all', async () => {
    tracing = await startTracing(loadConfig({}), { service: 'tributary-inference' });
    expect(tracing.endpoint).toBeNull();
    expect(tracingEnabled()).toBe(false);
    expect(startSpan('nothing')).toBeUndefined();
    const { lines, logger } = logLines();
    expect(await inSpan('nothing', async (span) => (logger.info('inside'), span))).toBeUndefined();
    expect(lines[0]).not.toHaveProperty('trace_id');
  });
});
