/**
 * The server span of a prediction request (`POST /v1/predict`), with its `validation`
 * child, made by route hooks; the predictor adds `feature_fetch`, `model_run` and
 * `log_publish` inside it. The request's handling (validation, handler, error handler)
 * runs with the span active, so its log lines carry the trace id. When tracing is off, no
 * hook is installed.
 */
import { SpanKind, SpanStatusCode, context, trace, type Span } from '@opentelemetry/api';
import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteShorthandOptions } from 'fastify';
import { endSpan, extractContext, startSpan, tracingEnabled } from '@tributary/shared';
import type { PredictResponse } from './predictor.js';

interface RequestSpans {
  server: Span;
  validation?: Span;
  error?: FastifyError;
}

type Hooks = Pick<RouteShorthandOptions, 'onRequest' | 'preValidation' | 'preHandler' | 'onError' | 'onResponse' | 'onRequestAbort'>;

const spans = new WeakMap<FastifyRequest, RequestSpans>();

/** Ends the validation span, if still open: failed when the request's schema refused it. */
function endValidation(traced: RequestSpans, error?: FastifyError): void {
  if (traced.validation === undefined) return;
  if (error !== undefined) {
    traced.validation.setAttribute('error.type', 'VALIDATION_FAILED');
    traced.validation.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  }
  traced.validation.end();
  traced.validation = undefined;
}

function errorType(error: FastifyError): string {
  if (error.validation) return 'VALIDATION_FAILED';
  return typeof error.code === 'string' ? error.code : error.name;
}

/** Route hooks that trace each request of `route`; none when tracing is off. */
export function requestTracing(route: string): Hooks {
  if (!tracingEnabled()) return {};
  return {
    onRequest(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
      const server = startSpan(
        `${request.method} ${route}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'http.route': route, 'url.path': route } },
        extractContext(request.headers),
      );
      if (server) spans.set(request, { server });
      done();
    },
    preValidation(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
      const traced = spans.get(request);
      if (traced === undefined) return done();
      const active = trace.setSpan(context.active(), traced.server);
      traced.validation = startSpan('validation', undefined, active);
      // Validation, the handler and the error handler run from here: with the span active.
      context.with(active, done);
    },
    preHandler(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
      const traced = spans.get(request);
      if (traced) endValidation(traced);
      done();
    },
    onError(request: FastifyRequest, _reply: FastifyReply, error: FastifyError, done: HookHandlerDoneFunction) {
      const traced = spans.get(request);
      if (traced) {
        traced.error = error;
        if (error.validation) endValidation(traced, error);
      }
      done();
    },
    onResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const traced = spans.get(request);
      if (traced) {
        endValidation(traced);
        traced.server.setAttribute('http.response.status_code', reply.statusCode);
        if (traced.error) traced.server.setAttribute('error.type', errorType(traced.error));
        if (reply.statusCode >= 500) endSpan(traced.server, traced.error ?? new Error(`HTTP ${reply.statusCode}`));
        else traced.server.end();
        spans.delete(request);
      }
      done();
    },
    onRequestAbort(request: FastifyRequest, done: HookHandlerDoneFunction) {
      const traced = spans.get(request);
      if (traced) {
        endValidation(traced);
        endSpan(traced.server, new Error('the client closed the connection'));
        spans.delete(request);
      }
      done();
    },
  };
}

/** Puts what was predicted on the request's span: model, version and variant (when one served every row), rows, degraded. */
export function describePrediction(request: FastifyRequest, responses: PredictResponse[]): void {
  const server = spans.get(request)?.server;
  if (server === undefined || responses.length === 0) return;
  const first = responses[0]!;
  const oneVersion = responses.every((r) => r.model.version === first.model.version && r.variant === first.variant);
  server.setAttributes({
    'tributary.model.name': first.model.name,
    ...(oneVersion ? { 'tributary.model.version': first.model.version, 'tributary.model.variant': first.variant } : {}),
    'tributary.rows': responses.length,
    'tributary.degraded': responses.some((r) => r.degraded),
  });
}
