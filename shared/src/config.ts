/**
 * Configuration, parsed once at start-up from environment variables into a typed object.
 * Every variable is declared here with its default and meaning (the configuration
 * reference); an invalid value stops the process with a message naming the variable.
 */
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDuration } from './features/duration.js';
import { parseDriftSchedule, type DriftSchedule } from './example/fraud/simulator-drift.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

interface Variable<T, D extends string | undefined = string> {
  description: string;
  /** The default as written in the environment; undefined: the variable is optional. */
  default: D;
  parse(raw: string): T;
  /** Its value is never printed (errors name the variable only). */
  secret?: boolean;
}

const text = (description: string, fallback: string): Variable<string> => ({
  description,
  default: fallback,
  parse: (raw) => {
    if (raw.trim() === '') throw new Error('must not be empty');
    return raw.trim();
  },
});

/** A directory, made absolute once at start: a relative path is taken from the process's working directory. */
const directory = (description: string, fallback: string): Variable<string> => ({
  description,
  default: fallback,
  parse: (raw) => {
    if (raw.trim() === '') throw new Error('must not be empty');
    return resolve(raw.trim());
  },
});

/** An integer from `min` to `max`, the range said in the description, as `duration`'s. */
const integer = (description: string, fallback: number, min: number, max: number): Variable<number> => ({
  description: `${description} From ${min} to ${max}.`,
  default: String(fallback),
  parse: (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error(`must be an integer between ${min} and ${max}`);
    const value = Number(raw);
    if (value < min || value > max) throw new Error(`must be an integer between ${min} and ${max}`);
    return value;
  },
});

const number = (description: string, fallback: number, min: number, max: number): Variable<number> => ({
  description: `${description} From ${min} to ${max}.`,
  default: String(fallback),
  parse: (raw) => {
    const value = Number(raw);
    // Decimal only: Number also reads 0x10, 0b1 and 0o7, which nobody means for a rate or a share.
    if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(raw) || !Number.isFinite(value) || value < min || value > max) {
      throw new Error(`must be a number between ${min} and ${max}`);
    }
    return value;
  },
});

/** A duration from `min` (default 1ms) to `max`, both as written in the environment. */
/** `range.why`: what sets the range, said when a value is out of it. */
const duration = (description: string, fallback: string, range: { min?: string; max: string; why?: string }): Variable<number> => {
  const min = range.min ?? '1ms';
  const [lowest, highest] = [parseDuration(min), parseDuration(range.max)];
  return {
    description: `${description} From ${min} to ${range.max}.`,
    default: fallback,
    parse: (raw) => {
      const value = parseDuration(raw.trim());
      if (value < lowest || value > highest) {
        throw new Error(`must be a duration from ${min} to ${range.max}${range.why ? ` (${range.why})` : ''}`);
      }
      return value;
    },
  };
};

/**
 * The longest duration of a setting that drives a timer: 24 days, under the longest delay a
 * Node.js timer keeps (2^31-1 ms, ~24.8 days; beyond it, the timer fires after 1 ms).
 */
const TIMER_MAX = '24d';

/**
 * The items of a comma-separated list, each trimmed; none for a blank value. An empty item (`a,,b`,
 * a trailing comma) is refused, not skipped: a value was left out, or a comma is one too many.
 */
export function commaList(raw: string): string[] {
  if (raw.trim() === '') return [];
  const items = raw.split(',').map((item) => item.trim());
  const empty = items.indexOf('');
  if (empty >= 0) throw new Error(`item ${empty + 1} of the comma-separated list is empty (a value left out, or a comma too many)`);
  return items;
}

/** A comma-separated list of at least one `what`. */
const list = (description: string, fallback: string, what: string): Variable<string[]> => ({
  description,
  default: fallback,
  parse: (raw) => {
    const items = commaList(raw);
    if (items.length === 0) throw new Error(`must list at least one ${what}`);
    return items;
  },
});

const boolean = (description: string, fallback: boolean): Variable<boolean> => ({
  description,
  default: String(fallback),
  parse: (raw) => {
    const value = raw.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(value)) return true;
    if (['false', '0', 'no'].includes(value)) return false;
    throw new Error('must be true or false');
  },
});

const brokers: Variable<string[], undefined> = {
  description: 'Kafka bootstrap brokers, comma-separated host:port. Unset: the embedded in-memory event log.',
  default: undefined,
  parse: (raw) => {
    const list = commaList(raw);
    if (list.length === 0) throw new Error('must list at least one host:port');
    for (const broker of list) {
      const port = /^[A-Za-z0-9_.\-[\]:]+:(\d{1,5})$/.exec(broker)?.[1];
      if (port === undefined) throw new Error(`"${broker}" is not host:port`);
      if (Number(port) < 1 || Number(port) > 65535) throw new Error(`"${broker}": port must be between 1 and 65535`);
    }
    return list;
  },
};

const choice = <T extends string>(description: string, fallback: T, options: readonly T[]): Variable<T> => ({
  description: `${description} One of ${options.join(', ')}.`,
  default: fallback,
  parse: (raw) => {
    const value = raw.trim().toLowerCase() as T;
    if (!options.includes(value)) throw new Error(`must be one of ${options.join(', ')}`);
    return value;
  },
});

const optionalText = (description: string, options: { secret?: boolean; oneOf?: readonly string[] } = {}): Variable<string, undefined> => ({
  description,
  default: undefined,
  secret: options.secret,
  parse: (raw) => {
    const value = raw.trim();
    if (value === '') throw new Error('must not be empty');
    if (options.oneOf && !options.oneOf.includes(value.toLowerCase())) throw new Error(`must be one of ${options.oneOf.join(', ')}`);
    return options.oneOf ? value.toLowerCase() : value;
  },
});

export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/** pino's levels, and `silent` (no logs). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const redisUrl: Variable<string, undefined> = {
  description:
    'Redis URL (redis:// or rediss:// for TLS; user and password in the URL). With REDIS_CLUSTER, one or more comma-separated seed nodes of the cluster. Unset: the embedded in-memory online store.',
  default: undefined,
  parse: (raw) => {
    const urls = commaList(raw);
    if (urls.length === 0) throw new Error('must be a URL such as redis://127.0.0.1:6379');
    for (const text of urls) {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new Error(`must be a URL such as redis://127.0.0.1:6379${urls.length > 1 ? ` ("${text}" is not)` : ''}`);
      }
      if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error('must start with redis:// or rediss://');
      // ioredis would take a URL without a host for localhost:6379.
      if (url.hostname === '')
        throw new Error(`must name a host, as redis://127.0.0.1:6379${urls.length > 1 ? ` ("${text}" does not)` : ''}`);
      // The path is the database number: ioredis ignores a SELECT Redis refuses and goes on in database 0.
      if (url.pathname !== '' && url.pathname !== '/' && !/^\/(?:[0-9]|1[0-5])$/.test(url.pathname))
        throw new Error(
          `names database "${decodeURIComponent(url.pathname.slice(1))}"${urls.length > 1 ? ` in "${text}"` : ''}: the path of a Redis URL is a database number from 0 to 15 (Redis's default 16 databases)`,
        );
    }
    return urls.join(',');
  },
};

const simulatorDrift: Variable<DriftSchedule, undefined> = {
  description:
    'Drift the simulator injects, as `after=<transactions or duration>,<shift>,...`; shifts: `amount=<factor>`, `channel=<web|app|pos>:<share>`, `country=<CC>:<share>`, `fraud_rate=<rate>`, `fraud=mimic` (e.g. `after=600,amount=3`). Unset: no drift.',
  default: undefined,
  parse: (raw) => parseDriftSchedule(raw),
};

/** An OTLP/HTTP endpoint: an http:// or https:// URL. */
const otlpEndpoint = (description: string): Variable<string, undefined> => ({
  description,
  default: undefined,
  parse: (raw) => {
    let url: URL;
    try {
      url = new URL(raw.trim());
    } catch {
      throw new Error('must be a URL such as http://127.0.0.1:4318');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must start with http:// or https:// (OTLP over HTTP)');
    return raw.trim();
  },
});

/** The base URL of an HTTP service, without a trailing slash (its routes are appended: `<base>/v1/predict`). */
const httpBase = (description: string, fallback: string): Variable<string> => ({
  description,
  default: fallback,
  parse: (raw) => {
    let url: URL;
    try {
      url = new URL(raw.trim());
    } catch {
      throw new Error(`must be a URL such as ${fallback}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`must start with http:// or https:// (such as ${fallback})`);
    if (url.search !== '' || url.hash !== '') throw new Error('must have no query or fragment: the routes are appended to it');
    return url.href.replace(/\/+$/, '');
  },
});

const bundledRegistry = fileURLToPath(new URL('../../models', import.meta.url));

/** `id:secret` pairs, comma-separated: the id names the caller in logs, audit and rate limits. */
const apiKeys: Variable<Map<string, string>, undefined> = {
  description: '',
  default: undefined,
  secret: true,
  parse: (raw) => {
    const keys = new Map<string, string>();
    for (const entry of commaList(raw)) {
      const colon = entry.indexOf(':');
      const id = entry.slice(0, colon);
      const secret = entry.slice(colon + 1);
      if (colon <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(id))
        throw new Error('each entry must be <id>:<secret>, the id made of letters, digits, _ . -');
      if (secret.length < 16) throw new Error(`the secret of "${id}" must be at least 16 characters`);
      // Sent in a header: other characters never arrive as written (a client sends UTF-8 bytes that are read back as Latin-1).
      if (!/^[\x21-\x7e]+$/.test(secret)) throw new Error(`the secret of "${id}" must be visible ASCII characters (no space, no accent)`);
      if (keys.has(secret)) throw new Error(`the secret of "${id}" is used by another key`);
      keys.set(secret, id);
    }
    if (keys.size === 0) throw new Error('must list at least one <id>:<secret>');
    return keys;
  },
};

/** The secret of one API key, as a client sends it (`Authorization: Bearer <secret>`). */
const apiKeySecret = (description: string): Variable<string, undefined> => ({
  description,
  default: undefined,
  secret: true,
  parse: (raw) => {
    const secret = raw.trim();
    // Sent in a header, and one of API_KEYS' comma-separated secrets of 16+ characters.
    if (!/^[\x21-\x7e]{16,}$/.test(secret) || secret.includes(',')) {
      throw new Error('must be the secret of a key of API_KEYS: 16 or more visible ASCII characters, no comma');
    }
    return secret;
  },
});

/** proxy-addr's names of address ranges (Fastify's trustProxy). */
const PROXY_RANGES = ['loopback', 'linklocal', 'uniquelocal'];

/** Which proxies in front of the service are trusted to name the client (X-Forwarded-For): Fastify's trustProxy. */
const trustProxy: Variable<boolean | string[]> = {
  description:
    "Which proxies in front of the service (an ingress, a load balancer) are trusted to name the client in `X-Forwarded-For`, and so whose address rate limits without API keys count per: `false` (the connection's peer is the client), `true` (the header's first address, whoever sent it: only behind proxies that overwrite the header), or a comma-separated list of the proxies' addresses and CIDR ranges (`loopback`, `linklocal`, `uniquelocal` name those ranges), of which the client is the first address not listed. A number of hops is not accepted: Fastify cannot check the peer with it, and trusts no proxy.",
  default: 'false',
  parse: (raw) => {
    const value = raw.trim().toLowerCase();
    if (value === 'true' || value === 'false') return value === 'true';
    if (/^\d+$/.test(value)) {
      throw new Error("a number of hops is not accepted (Fastify trusts no proxy with it): list the proxies' addresses or CIDR ranges");
    }
    const entries = commaList(value);
    for (const entry of entries) {
      const [address = '', bits, extra] = entry.split('/');
      const family = isIP(address);
      const prefixOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
      if (!PROXY_RANGES.includes(entry) && (family === 0 || !prefixOk || extra !== undefined)) {
        throw new Error(`"${entry}" is not an IP address, a CIDR range or one of ${PROXY_RANGES.join(', ')}`);
      }
    }
    if (entries.length === 0) throw new Error("must be true, false or a comma-separated list of the proxies' addresses");
    return entries;
  },
};

/** `id=limit` pairs, comma-separated: requests per second for the API key with that id. */
const rateLimits: Variable<Map<string, number>, undefined> = {
  description:
    'Requests per second for particular API keys, `id=limit` comma-separated with the ids of API_KEYS (e.g. `batch=50,web=2000`; 0: no limit); the others get RATE_LIMIT_PER_KEY.',
  default: undefined,
  parse: (raw) => {
    const limits = new Map<string, number>();
    for (const entry of commaList(raw)) {
      const eq = entry.indexOf('=');
      const id = entry.slice(0, eq).trim();
      const limit = entry.slice(eq + 1).trim();
      if (eq <= 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(id))
        throw new Error(`"${entry}" must be <id>=<requests per second>, the id of a key in API_KEYS`);
      if (!/^\d+$/.test(limit) || Number(limit) > 10_000_000) {
        throw new Error(`the limit of "${id}" must be an integer between 0 and 10000000 (requests per second; 0: no limit)`);
      }
      if (limits.has(id)) throw new Error(`"${id}" is given twice`);
      limits.set(id, Number(limit));
    }
    if (limits.size === 0) throw new Error('must list at least one <id>=<requests per second>');
    return limits;
  },
};

export const VARIABLES = {
  HOST: text('Address the HTTP server binds to.', '127.0.0.1'),
  PORT: integer('Port of the HTTP server (API, /metrics, /healthz, /readyz).', 3000, 0, 65535),
  LOG_LEVEL: choice('pino log level.', 'info', LOG_LEVELS),
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint(
    'OpenTelemetry collector (OTLP over HTTP, JSON) the services send their trace spans to; spans go to `<endpoint>/v1/traces`. Unset (and no OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): tracing is off.',
  ),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpEndpoint(
    'Full URL spans are posted to (e.g. `http://127.0.0.1:4318/v1/traces`); takes precedence over OTEL_EXPORTER_OTLP_ENDPOINT.',
  ),
  OTEL_SERVICE_NAME: optionalText(
    'Service name of the trace spans. Unset: the service (`tributary-inference`, `tributary-features`, `tributary` for `npm start`).',
  ),
  TRACING_SAMPLE_RATIO: number(
    'Share of traces recorded when tracing is on, decided from the trace id; a request that carries a `traceparent` header follows the decision of its caller.',
    1,
    0,
    1,
  ),
  KAFKA_BROKERS: brokers,
  KAFKA_CLIENT_ID: text(
    "Prefix of the Kafka clients' ids: each is `<KAFKA_CLIENT_ID>-<part>`, the part being `features`, `inference`, `inference-log` (the prediction log's producer), `monitor`, `simulator`, `standalone` (`npm start`), `backfill`, `trainer` (the trainer's commands), `scenario` (`npm run scenario:retrain`) or `bench`.",
    'tributary',
  ),
  KAFKA_SSL: boolean('Connect to the Kafka brokers over TLS (the system CAs, or KAFKA_SSL_CA_FILE).', false),
  KAFKA_SSL_CA_FILE: optionalText("PEM file of the certificate authorities that sign the brokers' certificates (implies KAFKA_SSL)."),
  KAFKA_SASL_MECHANISM: optionalText(
    'SASL authentication with the brokers: plain, scram-sha-256 or scram-sha-512 (with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD). Unset: none.',
    {
      oneOf: KAFKA_SASL_MECHANISMS,
    },
  ),
  KAFKA_SASL_USERNAME: optionalText('SASL user name.'),
  KAFKA_SASL_PASSWORD: optionalText('SASL password (never printed).', { secret: true }),
  KAFKA_SESSION_TIMEOUT: duration(
    "Consumer-group session timeout: how long a member that stopped answering keeps its partitions. Within the brokers' default group.min.session.timeout.ms and group.max.session.timeout.ms (a broker refuses a member outside them when it joins its group), and so at least six of the consumers' heartbeats (one a second): one late heartbeat does not cost a member its partitions.",
    '10s',
    {
      min: '6s',
      max: '30m',
      why: 'a Kafka broker refuses a consumer whose session timeout is outside its group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default',
    },
  ),
  KAFKA_FETCH_MAX_WAIT: duration(
    'Longest time a consumer fetch waits for records. Kafka answers as soon as records arrive; a broker that holds every fetch for this long (such as the local mock) adds up to this to feature freshness.',
    '100ms',
    { max: '30s' },
  ),
  CONSUMER_GROUP_PREFIX: text(
    "Prefix of the consumer groups: the feature pipeline's `<prefix>-features-<source>`, one per source (`<prefix>-features-transactions`, `<prefix>-features-labelled_transactions` in the example), and `<prefix>-label-join`; the monitor's `<prefix>-monitor`.",
    'tributary',
  ),
  REDIS_URL: redisUrl,
  REDIS_CLUSTER: boolean(
    "REDIS_URL names a Redis Cluster (its seed nodes): every entity's, model's and request's keys share one slot through a `{…}` hash tag.",
    false,
  ),
  REDIS_KEY_PREFIX: text('Prefix of every Redis key.', 'tributary:'),
  TOPIC_TRANSACTIONS: text('Topic of the example transaction events.', 'transactions'),
  TOPIC_LABELS: text('Topic of labels.', 'labels'),
  TOPIC_PREDICTIONS: text('Topic of the prediction log.', 'predictions'),
  TOPIC_LABELLED_TRANSACTIONS: text(
    "Topic of labels joined to their transaction's merchant (written by the label join).",
    'labelled-transactions',
  ),
  LABEL_JOIN_WINDOW: duration(
    'How long a transaction waits for its label, and a label for its transaction, in the label join. Under `npm start` with the simulator and no REDIS_URL, unless set: max(10m, 20 × SIMULATOR_LABEL_DELAY), as the process holds what it joins for that long.',
    '8d',
    {
      max: '365d',
    },
  ),
  TOPIC_DEAD_LETTER: text('Topic of records set aside, with the reason.', 'dead-letter'),
  FLUSH_INTERVAL: duration(
    'Longest time the feature pipeline keeps an applied event in memory before writing it to the online store.',
    '50ms',
    { max: TIMER_MAX },
  ),
  FEATURE_CACHE_MB: integer(
    "Heap for the entity states the feature pipeline keeps in memory between their events (estimated from their stored size, ~10 bytes of heap per stored byte); beyond it the least recently loaded are forgotten and read from the online store again at their next event. 0: a quarter of V8's heap limit (set with NODE_OPTIONS=--max-old-space-size).",
    0,
    0,
    1_000_000,
  ),
  ALLOWED_LATENESS: duration('Events older than the watermark by more than this are not applied (dead-lettered as late).', '5m', {
    max: '365d',
  }),
  MODEL_REGISTRY_DIR: directory(
    "Model registry directory: one folder per model name, one per version (`<name>/<version>/manifest.json` and the ONNX file). Default: the installation's `models` folder, as an absolute path (`/app/models` in the image). A relative path is taken from the working directory of the process: the repository under `npm start`, `services/<name>` under `npm start -w services/<name>`, `/app/services/<name>` in the image; the trainer's commands (`npm run train -w services/trainer`, `training-set`, `batch-predict`, `retrain`) take it from where `npm run` was started, as their path options. The monitor refuses to start on a directory that does not exist or cannot be read.",
    bundledRegistry,
  ),
  MODEL_NAME: text('Name of the model the inference service serves (its routing is kept in the online store).', 'fraud_detector'),
  ROUTING_POLL_INTERVAL: duration('How often each inference replica checks the model routing for a change.', '1s', { max: TIMER_MAX }),
  MODEL_THREADS: integer(
    'Worker threads running the model (onnxruntime) beside the event loop; as many spares (each with its copy of the model) start while runs past MODEL_RUN_TIMEOUT_MS hold them.',
    1,
    1,
    64,
  ),
  MODEL_INLINE_MAX_US: integer(
    'A batch whose model run is measured (at load) to cost at most this many microseconds is scored on the event loop instead of a worker thread: for a small model the hand-over costs the event loop about as much as the run, and adds two thread wake-ups to the latency (0.2–0.9 ms measured). 0: always in worker threads.',
    250,
    0,
    100_000,
  ),
  MODEL_BATCH_MAX_ROWS: integer('Most rows the model scores in one run (dynamic batching).', 256, 1, 65_536),
  MODEL_BATCH_DELAY_MS: number(
    'Longest extra wait for more rows before a batch is scored, ms; 0: only requests that arrived in the same event-loop turn are batched.',
    0,
    0,
    1000,
  ),
  MODEL_QUEUE_MAX_ROWS: integer(
    'Rows waiting for the model at most; beyond, predictions are shed with 503 and Retry-After.',
    4096,
    1,
    10_000_000,
  ),
  MODEL_RUN_TIMEOUT_MS: integer(
    "Longest run of one batch by the model, ms; beyond (a hung or runaway session), the batch's predictions fail with 503 MODEL_UNAVAILABLE and Retry-After; the run ends on its worker thread while a spare thread scores the next batches. Well above a normal run, which takes milliseconds. 0: no deadline.",
    5000,
    0,
    600_000,
  ),
  FEATURE_FETCH_TIMEOUT_MS: integer(
    'Longest wait for the online store on a prediction; after it the prediction is served with defaults, degraded.',
    250,
    1,
    60_000,
  ),
  PREDICT_BATCH_MAX_ROWS: integer('Most rows in one `POST /v1/predict/batch` request (at most MODEL_QUEUE_MAX_ROWS).', 256, 1, 10_000),
  API_KEYS: {
    ...apiKeys,
    description:
      'API keys for the client routes (prediction `/v1/predict…`, push `/v1/events/…` and feature reads `/v1/features/…`, `/v1/feature-groups…`), `id:secret` comma-separated (secrets of 16+ characters). Unset: those routes are open.',
  },
  ADMIN_API_KEYS: {
    ...apiKeys,
    description:
      'API keys for the admin routes (model registry and routing), `id:secret` comma-separated. Unset: the admin routes refuse every request.',
  },
  RATE_LIMIT_PER_KEY: integer(
    'Requests per second allowed to each API key (or client address without keys: see TRUST_PROXY) on the client routes (prediction, push and feature reads, one budget for all three), unless RATE_LIMITS gives the key its own; 0: no limit.',
    0,
    0,
    10_000_000,
  ),
  RATE_LIMITS: rateLimits,
  TRUST_PROXY: trustProxy,
  SHED_EVENT_LOOP_DELAY_MS: integer('Event-loop delay above which requests are shed with 503 and Retry-After; 0: never.', 200, 0, 60_000),
  BODY_LIMIT_BYTES: integer(
    'Largest accepted HTTP request body; the admin route registering a model version (`POST /admin/models/<name>/versions`, the ONNX file in base64) takes up to 256 MiB whatever this is.',
    1_048_576,
    1024,
    104_857_600,
  ),
  MAX_EVENTS_PER_REQUEST: integer('Most events accepted by one push-API request.', 1000, 1, 100_000),
  EVENTS_PUBLISH_TIMEOUT: duration(
    'Longest wait for Kafka to take the events of a push-API request (`POST /v1/events/<source>`); beyond it the request is answered 503 `EVENT_LOG_UNAVAILABLE` with Retry-After. The events may still reach Kafka afterwards: a client that retries can publish them twice. A replica that shuts down waits up to this long for the pushes in flight.',
    '3s',
    { min: '10ms', max: '5m' },
  ),
  PREDICTION_LOG_BUFFER: integer(
    'Prediction-log records kept in memory while Kafka is unreachable; beyond it they are counted as dropped.',
    100_000,
    100,
    10_000_000,
  ),
  PREDICTION_LOG_LINGER: duration(
    'Longest wait for more prediction-log records before a batch is produced to Kafka (fewer, larger batches cost far less CPU per record).',
    '50ms',
    { max: '15m' },
  ),
  PREDICTION_LOG_CLOSE_TIMEOUT: duration(
    "Longest wait at shutdown for the queued prediction-log records to reach Kafka; what is left is logged and counted as dropped. Keep the shutdown within the pod's termination grace period (deploy/k8s: preStop pause + EVENTS_PUBLISH_TIMEOUT + this + a few seconds to close the rest).",
    '10s',
    { max: '10m' },
  ),
  PREDICTION_LOG_PRODUCER: choice(
    "Kafka client that produces the prediction log: `librdkafka` (Debian's librdkafka1, on its own threads: about a third of kafkajs's CPU per record), `kafkajs` (in a worker thread), or `auto`: librdkafka where it loads, kafkajs otherwise.",
    'auto',
    ['auto', 'librdkafka', 'kafkajs'] as const,
  ),
  MONITOR_JOIN_WINDOW: duration(
    'How long the monitor keeps a prediction waiting for its label (and a label for its prediction). Under `npm start` with the simulator and no REDIS_URL, unless set: max(10m, 20 × SIMULATOR_LABEL_DELAY), as the process holds what it joins for that long.',
    '7d',
    {
      max: '365d',
    },
  ),
  MONITOR_JOIN_REPLAY_HORIZON: duration(
    "How long after a label joins waiting predictions the monitor keeps them (no longer than their own deadline) to answer the label's record again should it be offered again (a batch retried, a rebalance, a restart from the last offset commit); offered later, the record is a duplicate.",
    '1h',
    { max: '365d' },
  ),
  MONITOR_MAX_SERIES: integer(
    'Model/version/variant series with quality metrics at most; beyond, they are counted as `other`. A series idle for 25h is retired and frees its place.',
    50,
    1,
    10_000,
  ),
  MONITOR_SLICE_FIELDS: list('Request fields whose values slice the quality metrics (comma-separated).', 'country,channel', 'field'),
  MONITOR_MAX_SLICES: integer(
    'Values per slice field at most; beyond (and values longer than 256 characters), they are counted as `__other__`.',
    20,
    1,
    1000,
  ),
  MONITOR_CANARY_METRIC: choice(
    'Quality metric of the canary rule: a canary worse than the champion over the last hour by more than MONITOR_CANARY_MARGIN beyond sampling error is rolled back (log loss reads lower-is-better). The metrics with a standard error: ROC AUC (Hanley-McNeil), log loss, accuracy and recall (binomial).',
    'roc_auc',
    ['roc_auc', 'log_loss', 'accuracy', 'recall'] as const,
  ),
  MONITOR_CANARY_MARGIN: number(
    "How far below the champion (in the metric's units) a canary may fall before the monitor rolls it back, once the gap beyond it is more than sampling error.",
    0.02,
    0,
    1,
  ),
  MONITOR_CANARY_CONFIDENCE: number(
    'One-sided confidence the canary rule needs that a canary is worse than the champion by more than the margin, over all its looks at one hour (every 15 s: each look is held to (1 - confidence) / 240). An identical canary is rolled back in at most 1 - confidence of its hours.',
    0.99,
    0.5,
    0.999999,
  ),
  MONITOR_CANARY_MIN_PER_CLASS: integer(
    'Positive labels, and negative labels, the canary and the champion each need over the last hour before the canary rule judges.',
    30,
    1,
    1_000_000,
  ),
  SIMULATOR: boolean('Run the example simulator inside `npm start` (the embedded default).', true),
  SIMULATOR_RATE: number('Transactions per second the simulator emits.', 20, 0.1, 100_000),
  SIMULATOR_FRAUD_RATE: number('Share of simulated transactions that are fraudulent.', 0.03, 0, 1),
  SIMULATOR_LABEL_DELAY: duration('Mean delay before a simulated label arrives (each waits on a timer).', '30s', { max: '1d' }),
  SIMULATOR_USERS: integer('Number of simulated card holders.', 2000, 1, 10_000_000),
  SIMULATOR_SEED: integer('Seed of the simulator.', 7, 0, 2 ** 31 - 1),
  SIMULATOR_MAX_IN_FLIGHT: integer(
    "Transactions the simulator has on their way at most (each scored, then published): it sends at SIMULATOR_RATE whatever the services' latency, as clients do, and beyond this bound counts a transaction as dropped instead of sending it (logged at most every 10 s). 1000: 50 s of a stalled service at the default rate.",
    1000,
    1,
    1_000_000,
  ),
  SIMULATOR_DRIFT: simulatorDrift,
  INFERENCE_URL: httpBase('Where the simulator sends prediction requests (when run on its own).', 'http://127.0.0.1:3000'),
  SIMULATOR_API_KEY: apiKeySecret(
    'The secret of a key of API_KEYS the simulator sends with its prediction requests (`Authorization: Bearer <secret>`; never printed). Needed when the inference service has API_KEYS set; unset: it sends none.',
  ),
} satisfies Record<string, Variable<unknown, string | undefined>>;

type Variables = typeof VARIABLES;

/**
 * The settings whose default differs by service (services/<name>), which each one's main.ts
 * passes to loadConfig: the features service and the monitor listen beside the inference
 * service on one host.
 */
export const SERVICE_DEFAULTS: Readonly<Record<string, Partial<Record<keyof Variables, string>>>> = {
  features: { PORT: '3001' },
  monitor: { PORT: '3002' },
};
export type Config = {
  [K in keyof Variables]: Variables[K] extends Variable<infer T, infer D> ? (D extends string ? T : T | undefined) : never;
};

/** Masks the password of URLs (`redis://user:secret@host`) so that errors never print it. */
function withoutSecrets(text: string): string {
  return text.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

/** Settings of earlier versions that would now be ignored: a deployment that still sets one is told what replaced it. */
const REPLACED: Record<string, string> = {
  MONITOR_CANARY_MIN_LABELS:
    'the canary rule now waits for MONITOR_CANARY_MIN_PER_CLASS positives and as many negatives on each side, and tests the gap against its sampling error (MONITOR_CANARY_CONFIDENCE)',
};

/** Parses the environment; throws a ConfigError listing every invalid variable. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  serviceDefaults: Partial<Record<keyof Variables, string>> = {},
): Config {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(VARIABLES) as [keyof Variables, Variable<unknown, string | undefined>][]) {
    const raw = env[name] ?? serviceDefaults[name] ?? variable.default;
    if (raw === undefined || (env[name] === '' && variable.default === undefined)) {
      config[name] = undefined;
      continue;
    }
    try {
      config[name] = variable.parse(raw);
    } catch (error) {
      const shown = variable.secret ? '(value hidden)' : JSON.stringify(withoutSecrets(raw));
      problems.push(`${name}=${shown}: ${withoutSecrets((error as Error).message)}`);
    }
  }
  for (const [name, instead] of Object.entries(REPLACED)) {
    if (env[name] !== undefined) problems.push(`${name} is no longer read: ${instead}`);
  }
  const clientKeys = config.API_KEYS as Map<string, string> | undefined;
  const adminKeys = config.ADMIN_API_KEYS as Map<string, string> | undefined;
  if (clientKeys && adminKeys && [...clientKeys.keys()].some((secret) => adminKeys.has(secret))) {
    problems.push('API_KEYS and ADMIN_API_KEYS share a secret (values hidden): a key belongs to a client or to an admin, not both');
  }
  const limits = config.RATE_LIMITS as Map<string, number> | undefined;
  if (limits) {
    const ids = new Set(clientKeys?.values() ?? []);
    const unknown = [...limits.keys()].filter((id) => !ids.has(id));
    if (!clientKeys) problems.push('RATE_LIMITS gives limits per API key: set API_KEYS too');
    else if (unknown.length > 0) {
      problems.push(`RATE_LIMITS names ${unknown.map((id) => `"${id}"`).join(', ')}, not the id of any key in API_KEYS`);
    }
  }
  if (clientKeys && typeof config.SIMULATOR_API_KEY === 'string' && !clientKeys.has(config.SIMULATOR_API_KEY)) {
    problems.push('SIMULATOR_API_KEY (value hidden) is not the secret of any key in API_KEYS: its predictions would be refused');
  }
  if (config.KAFKA_SASL_MECHANISM !== undefined && (config.KAFKA_SASL_USERNAME === undefined || config.KAFKA_SASL_PASSWORD === undefined)) {
    problems.push('KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
  }
  if (config.KAFKA_SASL_MECHANISM === undefined && (config.KAFKA_SASL_USERNAME !== undefined || config.KAFKA_SASL_PASSWORD !== undefined)) {
    problems.push('KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM (plain, scram-sha-256 or scram-sha-512)');
  }
  if (typeof config.REDIS_URL === 'string' && config.REDIS_URL.includes(',') && config.REDIS_CLUSTER !== true) {
    problems.push('REDIS_URL lists several URLs: set REDIS_CLUSTER=true for the seed nodes of a Redis Cluster, or give one URL');
  }
  // One topic for two streams would feed one's records to the other's consumers (dead letters read back as transactions
  // would be dead-lettered again, for ever).
  const topicNames = Object.keys(VARIABLES).filter((name) => name.startsWith('TOPIC_'));
  const byTopic = new Map<string, string[]>();
  for (const name of topicNames)
    if (typeof config[name] === 'string') byTopic.set(config[name], [...(byTopic.get(config[name]) ?? []), name]);
  for (const [topic, names] of byTopic) {
    if (names.length > 1) problems.push(`${names.join(' and ')} name the same topic "${topic}": each stream needs its own`);
  }
  const batchRows = config.PREDICT_BATCH_MAX_ROWS as number | undefined;
  const queueRows = config.MODEL_QUEUE_MAX_ROWS as number | undefined;
  if (batchRows !== undefined && queueRows !== undefined && batchRows > queueRows) {
    problems.push(
      `PREDICT_BATCH_MAX_ROWS (${batchRows}) exceeds MODEL_QUEUE_MAX_ROWS (${queueRows}): a batch that large could never be queued for the model`,
    );
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return config as Config;
}
