/**
 * The inference service as a Fastify application. `buildApp` registers everything and
 * never listens (tests call `app.inject`); `service.ts` listens.
 */
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyReply } from 'fastify';
import type { TSchema } from 'typebox';
import {
  TributaryError,
  type CompiledFeatureGroup,
  type EventLog,
  type EventSource,
  type Logger,
  type OnlineStore,
  type Registry,
} from '@tributary/shared';
import { clientRoute, installAccess } from './access.js';
import { installErrorHandler } from './errors.js';
import { inferenceMetrics } from './metrics.js';
import { eventLogPublisher, PredictionLog, type PredictionPublisher } from './prediction-log.js';
import { createPredictor } from './predictor.js';
import type { ModelRegistry } from './registry/registry.js';
import type { RewardStore } from './registry/rewards.js';
import type { ModelServing } from './registry/serving.js';
import { adminRoutes } from './routes/admin.js';
import { eventsRoute } from './routes/events.js';
import { featureGroupsRoute, featuresRoute } from './routes/features.js';
import { opsRoutes } from './routes/ops.js';
import { predictRoute } from './routes/predict.js';

export interface InferenceDeps {
  logger: Logger;
  registry: Registry;
  eventLog: EventLog;
  store: OnlineStore;
  models: ModelRegistry;
  serving: Pick<ModelServing, 'current' | 'followsRouting' | 'refresh' | 'acquire' | 'release'>;
  rewards: RewardStore;
  modelName: string;
  groups: CompiledFeatureGroup[];
  sources: (EventSource & { schema: TSchema })[];
  requestFields: TSchema;
  topics: { predictions: string };
  bodyLimit: number;
  maxEventsPerRequest: number;
  /** Longest wait for the event log to take a push-API request's events (EVENTS_PUBLISH_TIMEOUT). */
  eventsPublishTimeoutMs: number;
  maxBatchRows: number;
  predictionLogCapacity: number;
  /** Longest wait for more records before a batch of the prediction log is sent (default 50 ms). */
  predictionLogLingerMs?: number;
  /** Longest wait at shutdown for the prediction log to be published (default 10 s); what is left is counted as dropped. */
  predictionLogCloseTimeoutMs?: number;
  featureFetchTimeoutMs: number;
  /** Where prediction-log records are published (default: the event log, on this thread). */
  predictionLogPublisher?: PredictionPublisher & { close?(): Promise<void> };
  apiKeys?: Map<string, string>;
  adminKeys?: Map<string, string>;
  ratePerKey: number;
  /** Requests per second of particular keys, by id (RATE_LIMITS). */
  rateLimits?: Map<string, number>;
  shedEventLoopDelayMs: number;
  /** Which proxies name the client in X-Forwarded-For (TRUST_PROXY): the address rate limits count per without keys. */
  trustProxy?: boolean | string[];
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The charset parameter of a Content-Type header. */
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;

const CLIENT_ERRORS: Record<string, [status: number, message: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request did not arrive in time'],
  HPE_HEADER_OVERFLOW: [431, 'the request headers are too large'],
};

/**
 * A request Node's HTTP parser refuses (a bad header line, `Content-Length: abc`, headers too
 * large) never reaches Fastify's routing: answered here, on the socket, in the service's error shape.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] = CLIENT_ERRORS[error.code ?? ''] ?? [400, `malformed HTTP request: ${error.message.slice(0, 200)}`];
  const body = JSON.stringify({ code: 'BAD_REQUEST', message });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** The service's Fastify instance with its settings and error handling, and no routes yet. */
export function createFastify(options: {
  logger: Logger;
  bodyLimit: number;
  serverError?: (code: string) => void;
  /** Which proxies name the client in X-Forwarded-For (TRUST_PROXY; default none). */
  trustProxy?: boolean | string[];
}) {
  const app = Fastify({
    trustProxy: options.trustProxy ?? false,
    // Answered below in the service's error shape, with Retry-After.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    // Entity ids may be 128 characters, percent-encoded in paths.
    routerOptions: { maxParamLength: 512 },
    // The router's own refusals (a bad percent-encoding, an oversized path parameter) in
    // the service's error shape, without echoing the whole URL.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      void (reply as FastifyReply)
        .status(status)
        .send({ code: status === 414 ? 'URI_TOO_LONG' : 'BAD_REQUEST', message: error.message.slice(0, 200) });
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  installErrorHandler(app, options.serverError);
  // From the moment the service closes, every request is answered 503 with Retry-After (the
  // requests in flight finish): the client retries, and another replica answers.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? new TributaryError('SHUTTING_DOWN', 'this replica is shutting down; retry, another replica will answer') : undefined);
  });
  // JSON is read as UTF-8: a body declared in another charset would be mangled, not decoded.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return done(null, payload);
    done(
      new TributaryError(
        'UNSUPPORTED_MEDIA_TYPE',
        `charset "${charset.slice(0, 40)}" is not supported: send JSON in UTF-8 (charset=utf-8)`,
      ),
    );
  });
  // A body that would set an object's prototype is refused as such (Fastify's parser calls it "not valid JSON").
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  // Read as bytes: bytes that are not UTF-8 are refused, not replaced by U+FFFD (a request id would be logged mangled).
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, bytes: Buffer, done) => {
    if (!isUtf8(bytes)) return done(new TributaryError('BAD_REQUEST', 'the body is not valid UTF-8'));
    const body = bytes.toString('utf8');
    parseJson(request, body, (error, value) => {
      if ((error as FastifyError | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY' && isJson(body)) {
        return done(
          new TributaryError('BAD_REQUEST', 'a body may not hold a "__proto__" key, nor a "constructor" key holding "prototype"'),
        );
      }
      done(error, value);
    });
  });
  // Every body is JSON: plain text is refused with 415 as any other media type, not parsed into a string.
  app.removeContentTypeParser('text/plain');
  return app;
}

const integer = (description: string) => ({ description, schema: { type: 'integer' } });
const RETRY_AFTER = { 'Retry-After': integer('seconds to wait before retrying') };
const RATE_LIMIT_HEADERS = {
  'X-RateLimit-Limit': integer('requests per second allowed to the API key (or client address)'),
  'X-RateLimit-Remaining': integer('requests left to it in the current second'),
  'X-RateLimit-Reset': integer('seconds until its budget is renewed'),
};

/** Declares the headers of every 429 (Retry-After, X-RateLimit-*) and 503 (Retry-After) answer in the OpenAPI document. */
function withRetryHeaders<T extends { paths?: object }>(document: T): T {
  for (const operations of Object.values(document.paths ?? {}) as Record<string, { responses?: Record<string, { headers?: object }> }>[]) {
    for (const { responses } of Object.values(operations)) {
      if (responses?.['429']) responses['429'].headers = { ...RETRY_AFTER, ...RATE_LIMIT_HEADERS };
      if (responses?.['503']) responses['503'].headers = RETRY_AFTER;
    }
  }
  return document;
}

export async function buildApp(deps: InferenceDeps) {
  const metrics = inferenceMetrics(deps.registry);
  const app = createFastify({ ...deps, serverError: metrics.serverError });
  const predictionLog = new PredictionLog({
    publisher: deps.predictionLogPublisher ?? eventLogPublisher(deps.eventLog),
    topic: deps.topics.predictions,
    capacity: deps.predictionLogCapacity,
    lingerMs: deps.predictionLogLingerMs,
    closeTimeoutMs: deps.predictionLogCloseTimeoutMs,
    stats: metrics.predictionLog,
    logger: deps.logger,
  });
  const predictor = createPredictor({
    serving: deps.serving,
    store: deps.store,
    log: predictionLog,
    stats: metrics.predictor,
    featureFetchTimeoutMs: deps.featureFetchTimeoutMs,
  });
  await installAccess(app, {
    apiKeys: deps.apiKeys,
    adminKeys: deps.adminKeys,
    ratePerKey: deps.ratePerKey,
    rateLimits: deps.rateLimits,
    shedEventLoopDelayMs: deps.shedEventLoopDelayMs,
    ...metrics.access,
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Tributary inference API', version: '0.1.0' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } },
      },
    },
    transformObject: (document) => ('openapiObject' in document ? withRetryHeaders(document.openapiObject) : document.swaggerObject),
    // An operation that needs a key says so (either way of sending it): the admin routes always,
    // the client routes when API_KEYS is set.
    transform: ({ schema, url, route }) => {
      const access = (route.config as { access?: string } | undefined)?.access;
      const keyed = access === 'admin' || (access === 'client' && deps.apiKeys !== undefined);
      return { schema: keyed && schema ? { ...schema, security: [{ bearer: [] }, { apiKey: [] }] } : schema, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const client = clientRoute();
  const entityTypes = [...new Set(deps.groups.flatMap((g) => g.entityFields))];
  await app.register(predictRoute, {
    predictor,
    entities: entityTypes,
    requestFields: deps.requestFields,
    maxBatchRows: deps.maxBatchRows,
    config: client,
  });
  await app.register(eventsRoute, {
    eventLog: deps.eventLog,
    sources: deps.sources,
    maxEvents: deps.maxEventsPerRequest,
    publishTimeoutMs: deps.eventsPublishTimeoutMs,
    pushed: metrics.eventsPushed,
    config: client,
  });
  const features = {
    store: deps.store,
    groups: deps.groups,
    sources: deps.sources,
    fetchTimeoutMs: deps.featureFetchTimeoutMs,
    config: client,
  };
  await app.register(featuresRoute, features);
  await app.register(featureGroupsRoute, features);
  await app.register(adminRoutes, {
    registry: deps.models,
    served: { name: deps.modelName, version: () => deps.serving.current.model.manifest.version, refresh: () => deps.serving.refresh() },
    rewards: deps.rewards,
    bodyLimit: 256 * 1024 * 1024,
  });
  await app.register(opsRoutes, {
    registry: deps.registry,
    store: deps.store,
    eventLog: deps.eventLog,
    routes: deps.models.routes,
    rewards: deps.rewards,
    model: () => {
      const { name, version } = deps.serving.current.model.manifest;
      return { name, version };
    },
    notReady: () =>
      deps.serving.followsRouting
        ? null
        : `the routing of ${deps.modelName} has not been read yet: serving the highest registered version until it can be`,
  });
  app.addHook('onClose', async () => {
    await predictionLog.close();
    await deps.predictionLogPublisher?.close?.();
  });
  return Object.assign(app, { predictionLog });
}
