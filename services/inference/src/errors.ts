/** Maps every failure to the error catalogue's JSON shape: `{ code, message, field? }`. */
import type { FastifyError, FastifyInstance } from 'fastify';
import { TributaryError, Type, WELL_FORMED, WELL_FORMED_TEXT } from '@tributary/shared';

export const ErrorResponse = Type.Object({
  code: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
});

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
};

function fieldOf(error: FastifyError): string | undefined {
  const first = error.validation?.[0];
  if (!first) return undefined;
  const path = first.instancePath.slice(1).replaceAll('/', '.');
  if (first.keyword === 'required') {
    const missing = (first.params as { missingProperty?: string }).missingProperty;
    return [path, missing].filter(Boolean).join('.');
  }
  if (first.keyword === 'additionalProperties') {
    const extra = (first.params as { additionalProperty?: string }).additionalProperty;
    return [path, extra].filter(Boolean).join('.');
  }
  return path || undefined;
}

/**
 * The 503s that are no fault: a request shed (counted in tributary_requests_shed_total; a line
 * per shed request, let alone a stack, would add work exactly while the service is overloaded)
 * and one that arrived while the replica shuts down (every rollout makes some; the client
 * retries another replica).
 */
export const NOT_SERVER_ERRORS: ReadonlySet<string> = new Set(['OVERLOADED', 'SHUTTING_DOWN']);

/** `serverError`: told the code of every 5xx answer but those of NOT_SERVER_ERRORS. */
export function installErrorHandler(app: FastifyInstance, serverError: (code: string) => void = () => {}): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof TributaryError) {
      if (NOT_SERVER_ERRORS.has(error.code)) request.log.debug(error.message);
      else if (error.httpStatus >= 500) {
        request.log.error({ err: error }, error.message);
        serverError(error.code);
      }
      if (error.retriable && error.httpStatus === 503) void reply.header('retry-after', '1');
      return reply
        .status(error.httpStatus)
        .send({ code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}) });
    }
    if (error.validation) {
      const field = fieldOf(error);
      const first = error.validation[0];
      let message = error.message;
      if (first?.keyword === 'additionalProperties') message = `unknown field "${field}"`;
      else if (first?.keyword === 'required') message = `missing required field "${field}"`;
      else if (first?.keyword === 'const') {
        // A choice of literals fails each of them: name them all.
        const allowed = error.validation
          .filter((v) => v.keyword === 'const' && v.instancePath === first.instancePath)
          .map((v) => JSON.stringify((v.params as { allowedValue?: unknown }).allowedValue));
        message = `${field ?? 'the value'} must be ${allowed.length > 1 ? `one of ${allowed.join(', ')}` : allowed[0]}`;
      } else if (first?.keyword === 'pattern' && (first.params as { pattern?: string }).pattern === WELL_FORMED) {
        message = `${field ?? 'the value'} must be ${WELL_FORMED_TEXT}`;
      } else if (field) message = `${field} ${first?.message ?? 'is invalid'}`;
      return reply.status(400).send({ code: 'VALIDATION_FAILED', message, ...(field ? { field } : {}) });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[error.code] ?? 'BAD_REQUEST';
      return reply.status(status).send({ code, message: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    serverError('INTERNAL');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
}
