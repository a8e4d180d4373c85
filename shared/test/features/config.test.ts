import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { commaList, ConfigError, loadConfig, VARIABLES } from '../../src/config.js';

/** The ConfigError thrown for `env`, or a failure when none is thrown. */
function configError(env: Record<string, string | undefined>, serviceDefaults = {}): ConfigError {
  try {
    loadConfig(env, serviceDefaults);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`);
}

describe('loadConfig: defaults', () => {
  it('an empty environment gives the documented defaults: embedded Kafka and Redis', () => {
    const config = loadConfig({});
    expect(Object.keys(config).sort()).toEqual(Object.keys(VARIABLES).sort());
    expect(config).toMatchObject({
      HOST: '127.0.0.1',
      PORT: 3000,
      LOG_LEVEL: 'info',
      KAFKA_BROKERS: undefined,
      KAFKA_CLIENT_ID: 'tributary',
      REDIS_URL: undefined,
      REDIS_CLUSTER: false,
      REDIS_KEY_PREFIX: 'tributary:',
      TOPIC_TRANSACTIONS: 'transactions',
      TOPIC_LABELS: 'labels',
      TOPIC_PREDICTIONS: 'predictions',
      TOPIC_DEAD_LETTER: 'dead-letter',
      ALLOWED_LATENESS: 5 * 60_000,
      MONITOR_JOIN_WINDOW: 7 * 86_400_000,
      MONITOR_JOIN_REPLAY_HORIZON: 3_600_000,
      BODY_LIMIT_BYTES: 1_048_576,
      MAX_EVENTS_PER_REQUEST: 1000,
      PREDICTION_LOG_BUFFER: 100_000,
      SIMULATOR: true,
      SIMULATOR_RATE: 20,
      SIMULATOR_FRAUD_RATE: 0.03,
      SIMULATOR_LABEL_DELAY: 30_000,
      SIMULATOR_USERS: 2000,
      SIMULATOR_SEED: 7,
      SIMULATOR_MAX_IN_FLIGHT: 1000,
      SIMULATOR_DRIFT: undefined,
      INFERENCE_URL: 'http://127.0.0.1:3000',
    });
  });

  it('MODEL_REGISTRY_DIR defaults to the bundled registry, which holds the default model', () => {
    const bundled = fileURLToPath(new URL('../../../models', import.meta.url));
    const config = loadConfig({});
    expect(config.MODEL_REGISTRY_DIR).toBe(bundled);
    expect(existsSync(join(bundled, config.MODEL_NAME, '1', 'manifest.json'))).toBe(true);
  });

  it('MODEL_REGISTRY_DIR is made absolute from the working directory', () => {
    expect(loadConfig({ MODEL_REGISTRY_DIR: 'registry/models' }).MODEL_REGISTRY_DIR).toBe(join(process.cwd(), 'registry/models'));
    expect(loadConfig({ MODEL_REGISTRY_DIR: '/srv/models/' }).MODEL_REGISTRY_DIR).toBe('/srv/models');
  });

  it('reads API keys as id:secret pairs and never prints a secret in its errors', () => {
    const keys = loadConfig({ API_KEYS: 'alice:0123456789abcdef, ci:fedcba9876543210' }).API_KEYS;
    expect(keys).toEqual(
      new Map([
        ['0123456789abcdef', 'alice'],
        ['fedcba9876543210', 'ci'],
      ]),
    );
    expect(() => loadConfig({ ADMIN_API_KEYS: 'ops:long-enough-secret' })).not.toThrow();
    // One secret, one caller: not twice in a list, not in both lists.
    expect(() => loadConfig({ API_KEYS: 'a:0123456789abcdef,b:0123456789abcdef' })).toThrow(/the secret of "b" is used by another key/);
    // Sent in a header: a secret with an accent or a space never arrives as written.
    for (const secret of ['0123456789abcdéf', '0123456789 abcdef']) {
      expect(() => loadConfig({ API_KEYS: `a:${secret}` })).toThrow(
        /API_KEYS=\(value hidden\): the secret of "a" must be visible ASCII characters \(no space, no accent\)/,
      );
    }
    expect(() => loadConfig({ API_KEYS: 'a:0123456789abcdef', ADMIN_API_KEYS: 'ops:0123456789abcdef' })).toThrow(
      /API_KEYS and ADMIN_API_KEYS share a secret \(values hidden\)/,
    );
    for (const bad of ['ops:short', 'nocolon0123456789', ':0123456789abcdef']) {
      let message = '';
      try {
        loadConfig({ ADMIN_API_KEYS: bad });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/ADMIN_API_KEYS=\(value hidden\)/);
      expect(message).not.toContain(bad);
    }
  });

  it('reads RATE_LIMITS as id=limit pairs for keys of API_KEYS, naming the variable and never a secret in its errors', () => {
    const keys = 'batch:0123456789abcdef,web:fedcba9876543210';
    expect(loadConfig({ API_KEYS: keys, RATE_LIMITS: ' batch=5, web=0 ' }).RATE_LIMITS).toEqual(
      new Map([
        ['batch', 5],
        ['web', 0],
      ]),
    );
    expect(loadConfig({ API_KEYS: keys }).RATE_LIMITS).toBeUndefined();
    const cases: [Record<string, string>, string][] = [
      [
        { API_KEYS: keys, RATE_LIMITS: 'batch' },
        'RATE_LIMITS="batch": "batch" must be <id>=<requests per second>, the id of a key in API_KEYS',
      ],
      [
        { API_KEYS: keys, RATE_LIMITS: 'batch=fast' },
        'RATE_LIMITS="batch=fast": the limit of "batch" must be an integer between 0 and 10000000',
      ],
      [{ API_KEYS: keys, RATE_LIMITS: 'batch=-1' }, 'the limit of "batch" must be an integer between 0 and 10000000'],
      [{ API_KEYS: keys, RATE_LIMITS: 'batch=1,batch=2' }, 'RATE_LIMITS="batch=1,batch=2": "batch" is given twice'],
      [{ API_KEYS: keys, RATE_LIMITS: 'batch=1,mobile=2' }, 'RATE_LIMITS names "mobile", not the id of any key in API_KEYS'],
      [{ RATE_LIMITS: 'batch=1' }, 'RATE_LIMITS gives limits per API key: set API_KEYS too'],
    ];
    for (const [env, message] of cases) {
      let error = '';
      try {
        loadConfig(env);
      } catch (thrown) {
        error = (thrown as Error).message;
      }
      expect(error).toContain(message);
      expect(error).not.toContain('0123456789abcdef');
    }
  });

  it("reads SIMULATOR_API_KEY as the secret of a key, one of API_KEYS' when they are set too, never printing it", () => {
    const secret = 'simulator-0123456789';
    expect(loadConfig({}).SIMULATOR_API_KEY).toBeUndefined();
    expect(loadConfig({ SIMULATOR_API_KEY: ` ${secret} ` }).SIMULATOR_API_KEY).toBe(secret);
    expect(loadConfig({ API_KEYS: `sim:${secret}`, SIMULATOR_API_KEY: secret }).SIMULATOR_API_KEY).toBe(secret);
    const cases: [Record<string, string>, string][] = [
      [{ SIMULATOR_API_KEY: 'short-secret' }, 'SIMULATOR_API_KEY=(value hidden): must be the secret of a key of API_KEYS'],
      [{ SIMULATOR_API_KEY: 'simulator,0123456789' }, 'SIMULATOR_API_KEY=(value hidden): must be the secret of a key of API_KEYS'],
      [{ SIMULATOR_API_KEY: 'simulator 0123456789' }, 'SIMULATOR_API_KEY=(value hidden): must be the secret of a key of API_KEYS'],
      [
        { API_KEYS: 'web:fedcba9876543210', SIMULATOR_API_KEY: secret },
        'SIMULATOR_API_KEY (value hidden) is not the secret of any key in API_KEYS',
      ],
    ];
    for (const [env, message] of cases) {
      const error = configError(env).message;
      expect(error).toContain(message);
      expect(error).not.toContain(env.SIMULATOR_API_KEY!.trim());
    }
  });

  it('refuses a setting an earlier version read and this one would ignore, naming what replaced it', () => {
    expect(() => loadConfig({ MONITOR_CANARY_MIN_LABELS: '200' })).toThrow(ConfigError);
    expect(() => loadConfig({ MONITOR_CANARY_MIN_LABELS: '200' })).toThrow(
      /MONITOR_CANARY_MIN_LABELS is no longer read: .*MONITOR_CANARY_MIN_PER_CLASS/,
    );
  });

  it('does not read process.env when given an environment', () => {
    const saved = process.env.PORT;
    process.env.PORT = 'not-a-port';
    try {
      expect(loadConfig({}).PORT).toBe(3000);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe('loadConfig: valid values', () => {
  it('parses each type, trimming surrounding blanks', () => {
    const config = loadConfig({
      HOST: ' 0.0.0.0 ',
      PORT: ' 8080 ',
      ALLOWED_LATENESS: '90s',
      SIMULATOR: 'NO',
      SIMULATOR_RATE: '2.5',
      SIMULATOR_FRAUD_RATE: '1',
      SIMULATOR_LABEL_DELAY: '2m',
      SIMULATOR_SEED: '0',
      PREDICTION_LOG_BUFFER: '100',
    });
    expect(config).toMatchObject({
      HOST: '0.0.0.0',
      PORT: 8080,
      ALLOWED_LATENESS: 90_000,
      SIMULATOR: false,
      SIMULATOR_RATE: 2.5,
      SIMULATOR_FRAUD_RATE: 1,
      SIMULATOR_LABEL_DELAY: 120_000,
      SIMULATOR_SEED: 0,
      PREDICTION_LOG_BUFFER: 100,
    });
  });

  it('booleans: true/1/yes and false/0/no, any case', () => {
    for (const raw of ['true', 'TRUE', '1', 'yes', ' Yes ']) expect(loadConfig({ SIMULATOR: raw }).SIMULATOR, raw).toBe(true);
    for (const raw of ['false', 'False', '0', 'no', 'NO']) expect(loadConfig({ SIMULATOR: raw }).SIMULATOR, raw).toBe(false);
  });

  it('durations accept both ends of their range', () => {
    const config = loadConfig({
      ROUTING_POLL_INTERVAL: '24d',
      KAFKA_SESSION_TIMEOUT: '6s',
      FLUSH_INTERVAL: '1ms',
      LABEL_JOIN_WINDOW: '365d',
    });
    expect(config.ROUTING_POLL_INTERVAL).toBe(24 * 86_400_000);
    expect(config.ROUTING_POLL_INTERVAL).toBeLessThanOrEqual(2 ** 31 - 1);
    expect([config.KAFKA_SESSION_TIMEOUT, config.FLUSH_INTERVAL, config.LABEL_JOIN_WINDOW]).toEqual([6_000, 1, 365 * 86_400_000]);
    expect(loadConfig({ KAFKA_SESSION_TIMEOUT: '30m' }).KAFKA_SESSION_TIMEOUT).toBe(1_800_000);
  });

  it('integers accept both ends of their range', () => {
    expect(loadConfig({ PORT: '0' }).PORT).toBe(0);
    expect(loadConfig({ PORT: '65535' }).PORT).toBe(65535);
    expect(loadConfig({ SIMULATOR_SEED: String(2 ** 31 - 1) }).SIMULATOR_SEED).toBe(2 ** 31 - 1);
  });

  it('KAFKA_BROKERS is a comma-separated list of host:port, blanks around them dropped', () => {
    expect(loadConfig({ KAFKA_BROKERS: 'kafka:9092' }).KAFKA_BROKERS).toEqual(['kafka:9092']);
    expect(loadConfig({ KAFKA_BROKERS: ' kafka-1:9092, kafka-2.example.com:19092 ,10.0.0.3:9093 ' }).KAFKA_BROKERS).toEqual([
      'kafka-1:9092',
      'kafka-2.example.com:19092',
      '10.0.0.3:9093',
    ]);
    expect(loadConfig({ KAFKA_BROKERS: '[::1]:9092' }).KAFKA_BROKERS).toEqual(['[::1]:9092']);
  });

  it('MONITOR_SLICE_FIELDS is read into its list of fields', () => {
    expect(loadConfig({}).MONITOR_SLICE_FIELDS).toEqual(['country', 'channel']);
    expect(loadConfig({ MONITOR_SLICE_FIELDS: ' merchant_category ,country' }).MONITOR_SLICE_FIELDS).toEqual([
      'merchant_category',
      'country',
    ]);
  });

  it('an empty KAFKA_BROKERS or REDIS_URL means unset: the embedded implementation', () => {
    const config = loadConfig({ KAFKA_BROKERS: '', REDIS_URL: '' });
    expect(config.KAFKA_BROKERS).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
  });

  it('SIMULATOR_DRIFT is read into a typed drift schedule; empty means no drift', () => {
    expect(loadConfig({ SIMULATOR_DRIFT: 'after=600,amount=3' }).SIMULATOR_DRIFT).toEqual({ after: { transactions: 600 }, amountScale: 3 });
    expect(
      loadConfig({ SIMULATOR_DRIFT: ' after=90s, channel=web:0.8 ,country=NG:0.25,fraud_rate=0.1,fraud=mimic ' }).SIMULATOR_DRIFT,
    ).toEqual({
      after: { ms: 90_000 },
      channel: { value: 'web', share: 0.8 },
      country: { value: 'NG', share: 0.25 },
      fraudRate: 0.1,
      fraudPattern: 'mimic',
    });
    expect(loadConfig({ SIMULATOR_DRIFT: 'after=0,fraud_rate=0' }).SIMULATOR_DRIFT).toEqual({ after: { transactions: 0 }, fraudRate: 0 });
    expect(loadConfig({ SIMULATOR_DRIFT: '' }).SIMULATOR_DRIFT).toBeUndefined();
  });

  it('REDIS_URL accepts redis:// and rediss://, kept as written (trimmed)', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(loadConfig({ REDIS_URL: ' rediss://user:pw@cache.example.com:6380/2 ' }).REDIS_URL).toBe(
      'rediss://user:pw@cache.example.com:6380/2',
    );
  });

  it('REDIS_URL lists the seed nodes of a Redis Cluster only with REDIS_CLUSTER=true', () => {
    const seeds = 'redis://10.0.0.1:7000, redis://10.0.0.2:7000';
    expect(loadConfig({ REDIS_URL: seeds, REDIS_CLUSTER: 'true' })).toMatchObject({
      REDIS_URL: 'redis://10.0.0.1:7000,redis://10.0.0.2:7000',
      REDIS_CLUSTER: true,
    });
    expect(configError({ REDIS_URL: seeds }).message).toContain('REDIS_URL lists several URLs: set REDIS_CLUSTER=true');
    expect(configError({ REDIS_URL: 'redis://10.0.0.1:7000,10.0.0.2:7000', REDIS_CLUSTER: 'true' }).message).toContain(
      'must be a URL such as redis://127.0.0.1:6379 ("10.0.0.2:7000" is not)',
    );
  });

  it('INFERENCE_URL is an http(s) base URL, kept without a trailing slash (its routes are appended)', () => {
    expect(loadConfig({}).INFERENCE_URL).toBe('http://127.0.0.1:3000');
    expect(loadConfig({ INFERENCE_URL: ' http://inference:3000/ ' }).INFERENCE_URL).toBe('http://inference:3000');
    expect(loadConfig({ INFERENCE_URL: 'https://ml.example.com/tributary//' }).INFERENCE_URL).toBe('https://ml.example.com/tributary');
  });

  it('refuses two stream topics of one name, naming the variables (dead letters read back as transactions would loop)', () => {
    expect(configError({ TOPIC_DEAD_LETTER: 'transactions' }).message).toContain(
      'TOPIC_TRANSACTIONS and TOPIC_DEAD_LETTER name the same topic "transactions": each stream needs its own',
    );
    expect(configError({ TOPIC_LABELS: 'x', TOPIC_PREDICTIONS: ' x ' }).message).toContain(
      'TOPIC_LABELS and TOPIC_PREDICTIONS name the same topic "x"',
    );
    expect(loadConfig({ TOPIC_LABELS: 'x' }).TOPIC_LABELS).toBe('x');
  });

  it('PREDICT_BATCH_MAX_ROWS may not exceed MODEL_QUEUE_MAX_ROWS, where such a batch could never wait', () => {
    expect(loadConfig({ PREDICT_BATCH_MAX_ROWS: '1000', MODEL_QUEUE_MAX_ROWS: '1000' }).PREDICT_BATCH_MAX_ROWS).toBe(1000);
    expect(configError({ PREDICT_BATCH_MAX_ROWS: '1000', MODEL_QUEUE_MAX_ROWS: '500' }).message).toContain(
      'PREDICT_BATCH_MAX_ROWS (1000) exceeds MODEL_QUEUE_MAX_ROWS (500): a batch that large could never be queued for the model',
    );
  });
});

describe('commaList', () => {
  it('gives the items of a comma-separated list, trimmed, and none for a blank value', () => {
    expect(commaList('a')).toEqual(['a']);
    expect(commaList(' a , b c,d ')).toEqual(['a', 'b c', 'd']);
    expect(commaList('')).toEqual([]);
    expect(commaList(' \t')).toEqual([]);
  });

  it('refuses an empty item, saying which, rather than skipping it', () => {
    expect(() => commaList('a,,b')).toThrow('item 2 of the comma-separated list is empty (a value left out, or a comma too many)');
    expect(() => commaList(',a')).toThrow('item 1 of the comma-separated list is empty');
    expect(() => commaList('a, b, ')).toThrow('item 3 of the comma-separated list is empty');
    expect(() => commaList(' , ')).toThrow('item 1 of the comma-separated list is empty');
  });

  it('is how every list variable reads its value: an empty item is refused, never a secret shown', () => {
    for (const name of ['API_KEYS', 'ADMIN_API_KEYS']) {
      expect(configError({ [name]: 'a:0123456789abcdef,,b:fedcba9876543210' }).message).toBe(
        `invalid configuration:\n  ${name}=(value hidden): item 2 of the comma-separated list is empty (a value left out, or a comma too many)`,
      );
    }
    const keys = 'batch:0123456789abcdef';
    expect(configError({ API_KEYS: keys, RATE_LIMITS: 'batch=5,' }).message).toContain(
      'RATE_LIMITS="batch=5,": item 2 of the comma-separated list is empty',
    );
  });
});

describe('loadConfig: invalid values name the variable and what is expected', () => {
  const cases: [string, string, string][] = [
    ['PORT', 'abc', 'must be an integer between 0 and 65535'],
    ['PORT', '3.5', 'must be an integer between 0 and 65535'],
    ['PORT', '65536', 'must be an integer between 0 and 65535'],
    ['PORT', '-1', 'must be an integer between 0 and 65535'],
    ['PORT', '', 'must be an integer between 0 and 65535'],
    ['BODY_LIMIT_BYTES', '1000', 'must be an integer between 1024 and 104857600'],
    ['MAX_EVENTS_PER_REQUEST', '1e3', 'must be an integer between 1 and 100000'],
    ['SIMULATOR_RATE', 'fast', 'must be a number between 0.1 and 100000'],
    ['SIMULATOR_RATE', '0', 'must be a number between 0.1 and 100000'],
    ['SIMULATOR_FRAUD_RATE', '0b1', 'must be a number between 0 and 1'],
    ['SIMULATOR_RATE', '0x10', 'must be a number between 0.1 and 100000'],
    ['SIMULATOR_RATE', 'Infinity', 'must be a number between 0.1 and 100000'],
    ['SIMULATOR_FRAUD_RATE', '1.5', 'must be a number between 0 and 1'],
    ['SIMULATOR_FRAUD_RATE', ' ', 'must be a number between 0 and 1'],
    ['SIMULATOR', 'maybe', 'must be true or false'],
    ['ALLOWED_LATENESS', '5 minutes', '"5 minutes" is not a duration (expected e.g. 30s, 10m, 1h, 7d)'],
    ['ALLOWED_LATENESS', '0s', '"0s" must be a positive duration'],
    ['SIMULATOR_LABEL_DELAY', '30', '"30" is not a duration'],
    // A timer's delay beyond 2^31-1 ms (~24.8 days) fires after 1 ms: polling Redis every millisecond.
    ['ROUTING_POLL_INTERVAL', '25d', 'must be a duration from 1ms to 24d'],
    ['FLUSH_INTERVAL', '600h', 'must be a duration from 1ms to 24d'],
    ['PREDICTION_LOG_LINGER', '1h', 'must be a duration from 1ms to 15m'],
    ['SIMULATOR_LABEL_DELAY', '2d', 'must be a duration from 1ms to 1d'],
    ['KAFKA_FETCH_MAX_WAIT', '1m', 'must be a duration from 1ms to 30s'],
    ['MONITOR_JOIN_WINDOW', '99999999999999999999d', 'must be a duration from 1ms to 365d'],
    // A default broker refuses a member's session timeout under 6s or over 30m when it joins its group.
    ['KAFKA_SESSION_TIMEOUT', '1ms', 'must be a duration from 6s to 30m'],
    ['KAFKA_SESSION_TIMEOUT', '3s', 'must be a duration from 6s to 30m'],
    [
      'KAFKA_SESSION_TIMEOUT',
      '5999ms',
      'must be a duration from 6s to 30m (a Kafka broker refuses a consumer whose session timeout is outside its group.min.session.timeout.ms and group.max.session.timeout.ms, 6s and 30m by default)',
    ],
    ['KAFKA_SESSION_TIMEOUT', '31m', 'must be a duration from 6s to 30m'],
    ['MONITOR_JOIN_REPLAY_HORIZON', '0m', '"0m" must be a positive duration'],
    ['MONITOR_JOIN_REPLAY_HORIZON', '1 hour', '"1 hour" is not a duration'],
    ['SIMULATOR_DRIFT', 'amount=3', 'after is missing'],
    ['SIMULATOR_DRIFT', 'after=600', 'names no shift'],
    ['SIMULATOR_DRIFT', ' , ', 'names no setting'],
    ['SIMULATOR_DRIFT', 'after=600,scale=3', 'unknown setting "scale" (expected after, amount, channel, country, fraud_rate, fraud)'],
    ['SIMULATOR_DRIFT', 'after=soon,amount=3', 'after=soon: expected a number of transactions or a duration'],
    ['SIMULATOR_DRIFT', 'after=600,amount=0', 'amount=0: the factor must be a number in (0, 1000]'],
    ['SIMULATOR_DRIFT', 'after=600,amount', 'amount has no value'],
    ['SIMULATOR_DRIFT', 'after=600,amount=2,amount=3', 'amount is given twice'],
    ['SIMULATOR_DRIFT', 'after=600,channel=fax:0.5', 'channel=fax:0.5: the channel must be one of web, app, pos'],
    ['SIMULATOR_DRIFT', 'after=600,channel=web', 'channel=web must be <value>:<share>'],
    ['SIMULATOR_DRIFT', 'after=600,country=ng:0.5', 'country=ng:0.5: the country must be two capital letters (ISO 3166)'],
    ['SIMULATOR_DRIFT', 'after=600,country=NG:1.5', 'country: the share "1.5" must be a number in (0, 1]'],
    ['SIMULATOR_DRIFT', 'after=600,fraud_rate=2', 'fraud_rate=2 must be a number between 0 and 1'],
    ['SIMULATOR_DRIFT', 'after=600,fraud=steal', 'fraud=steal: the only fraud pattern is mimic'],
    ['HOST', '   ', 'must not be empty'],
    ['TOPIC_TRANSACTIONS', '', 'must not be empty'],
    ['KAFKA_BROKERS', 'kafka', '"kafka" is not host:port'],
    ['KAFKA_BROKERS', 'kafka:9092,localhost', '"localhost" is not host:port'],
    ['KAFKA_BROKERS', 'kafka:9092/x', '"kafka:9092/x" is not host:port'],
    ['KAFKA_BROKERS', ' ', 'must list at least one host:port'],
    ['KAFKA_BROKERS', 'kafka-1:9092,,kafka-2:9092', 'item 2 of the comma-separated list is empty (a value left out, or a comma too many)'],
    ['KAFKA_BROKERS', 'kafka-1:9092,', 'item 2 of the comma-separated list is empty'],
    ['REDIS_URL', 'redis://10.0.0.1:7000, ,redis://10.0.0.2:7000', 'item 2 of the comma-separated list is empty'],
    ['TRUST_PROXY', '10.0.0.1,,10.0.0.2', 'item 2 of the comma-separated list is empty'],
    ['MONITOR_SLICE_FIELDS', 'country,,channel', 'item 2 of the comma-separated list is empty'],
    ['MONITOR_SLICE_FIELDS', ' ', 'must list at least one field'],
    ['REDIS_URL', 'http://127.0.0.1:6379', 'must start with redis:// or rediss://'],
    ['REDIS_URL', 'localhost:6379', 'must start with redis:// or rediss://'],
    ['REDIS_URL', '127.0.0.1:6379', 'must be a URL such as redis://127.0.0.1:6379'],
    ['REDIS_URL', 'not a url', 'must be a URL such as redis://127.0.0.1:6379'],
    ['REDIS_URL', 'redis://', 'must name a host, as redis://127.0.0.1:6379'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/99', 'names database "99": the path of a Redis URL is a database number from 0 to 15'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/abc', 'names database "abc": the path of a Redis URL is a database number from 0 to 15'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/1/x', 'names database "1/x"'],
    ['INFERENCE_URL', 'localhost:3000', 'must start with http:// or https://'],
    ['INFERENCE_URL', 'not a url', 'must be a URL such as http://127.0.0.1:3000'],
    ['INFERENCE_URL', 'http://inference:3000/?x=1', 'must have no query or fragment'],
  ];
  for (const [name, raw, expected] of cases) {
    it(`${name}=${JSON.stringify(raw)}`, () => {
      const error = configError({ [name]: raw });
      expect(error.name).toBe('ConfigError');
      expect(error.message).toContain(`${name}=${JSON.stringify(raw)}: ${expected}`);
    });
  }

  it('takes a Redis URL with a database number from 0 to 15, or none', () => {
    for (const url of ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379/', 'redis://127.0.0.1:6379/0', 'rediss://cache:6380/15']) {
      expect(loadConfig({ REDIS_URL: url }).REDIS_URL).toBe(url);
    }
  });

  it('lists every invalid variable at once, one per line, and no valid one', () => {
    const error = configError({ PORT: 'x', SIMULATOR: 'maybe', REDIS_URL: 'http://cache:6379', HOST: 'fine', ALLOWED_LATENESS: 'soon' });
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('invalid configuration:');
    expect(lines.slice(1).map((l) => l.trim().split('=')[0])).toEqual(['PORT', 'REDIS_URL', 'ALLOWED_LATENESS', 'SIMULATOR']);
    expect(error.message).not.toContain('HOST');
  });

  it('rejects a KAFKA_BROKERS port outside 1-65535', () => {
    // `host:port` is checked by /:\d{1,5}$/ only: 99999 passes and fails later, at connect time
    expect(configError({ KAFKA_BROKERS: 'kafka:99999' }).message).toContain('KAFKA_BROKERS=');
    expect(configError({ KAFKA_BROKERS: 'kafka:0' }).message).toContain('KAFKA_BROKERS=');
  });

  it('does not echo the password of a rejected REDIS_URL', () => {
    // the message goes to the start-up log; a mistyped URL must not leak its credentials
    for (const raw of ['redis//:s3cret-pass@cache:6379', 'http://admin:s3cret-pass@cache:6379']) {
      const error = configError({ REDIS_URL: raw });
      expect(error.message).toContain('REDIS_URL');
      expect(error.message, raw).not.toContain('s3cret-pass');
    }
  });
});

describe('loadConfig: service defaults', () => {
  it('apply only when the variable is unset', () => {
    expect(loadConfig({}, { PORT: '3001' }).PORT).toBe(3001);
    expect(loadConfig({ PORT: '4000' }, { PORT: '3001' }).PORT).toBe(4000);
    expect(loadConfig({ PORT: undefined }, { PORT: '3001' }).PORT).toBe(3001);
    // set but empty is not unset: the empty value is validated, not replaced
    expect(configError({ PORT: '' }, { PORT: '3001' }).message).toContain('PORT="": must be an integer');
  });

  it('apply to variables without a default', () => {
    expect(loadConfig({}, { KAFKA_BROKERS: 'kafka:9092' }).KAFKA_BROKERS).toEqual(['kafka:9092']);
    expect(loadConfig({ KAFKA_BROKERS: 'other:9093' }, { KAFKA_BROKERS: 'kafka:9092' }).KAFKA_BROKERS).toEqual(['other:9093']);
  });

  it('are validated like the environment', () => {
    expect(configError({}, { PORT: 'three thousand' }).message).toContain('PORT="three thousand": must be an integer between 0 and 65535');
  });

  it('do not change other variables', () => {
    const config = loadConfig({}, { PORT: '3002' });
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.SIMULATOR_RATE).toBe(20);
  });
});
