/**
 * Tracing: OpenTelemetry spans of predictions and feature-pipeline batches, exported over
 * OTLP/HTTP (JSON) when an endpoint is configured; off by default. Spans are made by hand
 * where the work happens (no auto-instrumentation). The SDK is loaded only when tracing
 * starts; while it is off, `startSpan` and `inSpan` test one variable and make no span
 * object, and log lines carry no trace fields.
 */
import {
  context,
  diag,
  DiagLogLevel,
  propagation,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type DiagLogger,
  type Span,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

export { SpanKind, type Span } from '@opentelemetry/api';

export type TracingConfig = Pick<
  Config,
  'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' | 'OTEL_SERVICE_NAME' | 'TRACING_SAMPLE_RATIO'
>;

export interface Tracing {
  /** Where spans are posted; null: tracing is off. */
  readonly endpoint: string | null;
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is pending, then stops: no span is made afterwards. */
  stop(): Promise<void>;
}

/** The tracer while tracing runs in this process, else null. */
let tracer: Tracer | null = null;

const OFF: Tracing = { endpoint: null, flush: async () => {}, stop: async () => {} };

export function tracingEnabled(): boolean {
  return tracer !== null;
}

/** Where spans are posted (the traces endpoint, or `<endpoint>/v1/traces`), or undefined: off. */
export function tracesEndpoint(config: TracingConfig): string | undefined {
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/** OpenTelemetry's own complaints (an export that failed) as warnings of the service's log. */
function diagLogger(logger: Logger): DiagLogger {
  const warn = (message: string, ...args: unknown[]) => logger.warn({ otel: args.length > 0 ? args : undefined }, `tracing: ${message}`);
  const ignore = () => {};
  return { error: warn, warn, info: ignore, debug: ignore, verbose: ignore };
}

/**
 * Starts tracing for this process when an OTLP endpoint is configured (one service name per
 * process); otherwise returns a handle that does nothing. Call `stop` on shutdown: it
 * exports the spans still buffered.
 */
export async function startTracing(config: TracingConfig, options: { service: string; logger?: Logger }): Promise<Tracing> {
  const endpoint = tracesEndpoint(config);
  if (endpoint === undefined) return OFF;
  if (tracer !== null) throw new Error('tracing is already started in this process');
  const [sdk, { OTLPTraceExporter }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const provider = new sdk.NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.OTEL_SERVICE_NAME ?? options.service }),
    // A trace started here is kept with the configured probability; one that comes with a
    // `traceparent` follows its caller's decision.
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(config.TRACING_SAMPLE_RATIO) }),
    spanProcessors: [new sdk.BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }))],
  });
  // The AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  if (options.logger) diag.setLogger(diagLogger(options.logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  tracer = provider.getTracer('tributary');
  let stopped: Promise<void> | null = null;
  return {
    endpoint,
    flush: () => provider.forceFlush(),
    stop: () =>
      (stopped ??= (async () => {
        tracer = null;
        try {
          await provider.shutdown();
        } finally {
          trace.disable();
          context.disable();
          propagation.disable();
          diag.disable();
        }
      })()),
  };
}

/** A span, child of the active one (or of `parent`); undefined when tracing is off. */
export function startSpan(name: string, options?: SpanOptions, parent?: Context): Span | undefined {
  return tracer?.startSpan(name, options, parent);
}

/** Marks a span failed with the error. */
export function failSpan(span: Span, error: unknown): void {
  const cause = error instanceof Error ? error : new Error(String(error));
  span.recordException(cause);
  span.setStatus({ code: SpanStatusCode.ERROR, message: cause.message });
}

/** Ends a span (if any), failed when an error is given. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (span === undefined) return;
  if (error !== undefined) failSpan(span, error);
  span.end();
}

/**
 * Runs `work` in a span that is active meanwhile (spans started inside are its children)
 * and ends it when `work` settles, failed if it throws. Tracing off: runs `work` alone.
 */
export function inSpan<T>(name: string, work: (span: Span | undefined) => Promise<T>, options: SpanOptions = {}): Promise<T> {
  const active = tracer;
  if (active === null) return work(undefined);
  return active.startActiveSpan(name, options, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Runs `work` with `span` active (spans started inside are its children); without a span, runs it alone. */
export function withSpan<T>(span: Span | undefined, work: () => T): T {
  if (span === undefined) return work();
  return context.with(trace.setSpan(context.active(), span), work);
}

/** The active context, to parent a span recorded later; undefined when tracing is off. */
export function activeContext(): Context | undefined {
  return tracer === null ? undefined : context.active();
}

/** Whether the context holds a span (a span recorded in it would have a parent). */
export function hasSpan(parent: Context): boolean {
  return trace.getSpan(parent) !== undefined;
}

/**
 * Records a span once its work is over, for work whose worth recording is known only at
 * the end (a periodic flush that wrote nothing is not recorded). `startTime` in epoch ms.
 */
export function recordSpan(name: string, parent: Context, startTime: number, attributes: Attributes, error?: unknown): void {
  const span = tracer?.startSpan(name, { startTime, attributes }, parent);
  endSpan(span, error);
}

/** Epoch milliseconds, sub-millisecond precise: span start times. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `trace_id` and `span_id` of the active span, for log lines (a pino mixin); empty when there is none. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  if (tracer === null) return {};
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** Reads the W3C `traceparent` of incoming headers: the context to parent a server span in. */
export function extractContext(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(ROOT_CONTEXT, headers);
}
