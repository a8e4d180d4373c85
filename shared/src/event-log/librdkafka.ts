/**
 * A Kafka producer on librdkafka, the C client most Kafka clients build on (Debian's
 * `librdkafka1`), called through koffi's foreign-function interface. Its threads encode and
 * send the records: in the prediction log's measurements it took about a third of kafkajs's
 * CPU per record, and none of it on a V8 heap (docs/inference.md, Measured).
 *
 * Only what the prediction log needs: records with a key and a value (no headers), published
 * in batches that settle when librdkafka reports every record of the batch delivered, or
 * reject when one of them failed (the caller keeps the batch and retries, as with kafkajs).
 * Delivery reports and errors are read from librdkafka's main event queue; no callback goes
 * from C into JavaScript.
 */
import koffi from 'koffi';
import type { OutgoingRecord } from './types.js';

const PRODUCER = 0;
const PARTITION_UNASSIGNED = -1;
const MSG_F_COPY = 0x2;
const EVENT_DR = 0x1;
const EVENT_LOG = 0x4;
const EVENT_ERROR = 0x8;
/** rd_kafka_purge's flags: the records waiting in librdkafka's queues, and those sent and not yet acknowledged. */
const PURGE_QUEUE = 0x1;
const PURGE_INFLIGHT = 0x2;
/** The event queue is read 1 ms after a batch is produced, then less often (doubling) while it waits, at most every 25 ms. */
const POLL_FIRST_MS = 1;
const POLL_MAX_MS = 25;
/** Between batches, errors and logs are read this often. */
const IDLE_POLL_MS = 1_000;
/** Settings under which a batch would never settle: every record must be reported, in bounded time. */
const FORBIDDEN: Record<string, string> = {
  'message.timeout.ms': '0',
  'delivery.timeout.ms': '0',
  'delivery.report.only.error': 'true',
};

function bind(lib: koffi.IKoffiLib) {
  return {
    version: lib.func('int rd_kafka_version()'),
    confNew: lib.func('void *rd_kafka_conf_new()'),
    confSet: lib.func('int rd_kafka_conf_set(void *conf, const char *name, const char *value, _Out_ char *errstr, size_t size)'),
    confDestroy: lib.func('void rd_kafka_conf_destroy(void *conf)'),
    confSetEvents: lib.func('void rd_kafka_conf_set_events(void *conf, int events)'),
    create: lib.func('void *rd_kafka_new(int type, void *conf, _Out_ char *errstr, size_t size)'),
    destroy: lib.func('void rd_kafka_destroy(void *rk)'),
    setLogQueue: lib.func('int rd_kafka_set_log_queue(void *rk, void *queue)'),
    topicNew: lib.func('void *rd_kafka_topic_new(void *rk, const char *topic, void *conf)'),
    topicDestroy: lib.func('void rd_kafka_topic_destroy(void *rkt)'),
    purge: lib.func('int rd_kafka_purge(void *rk, int purge_flags)'),
    produce: lib.func(
      'int rd_kafka_produce(void *rkt, int32_t partition, int flags, void *payload, size_t len, void *key, size_t keylen, void *opaque)',
    ),
    lastError: lib.func('int rd_kafka_last_error()'),
    errorString: lib.func('const char *rd_kafka_err2str(int err)'),
    mainQueue: lib.func('void *rd_kafka_queue_get_main(void *rk)'),
    queueDestroy: lib.func('void rd_kafka_queue_destroy(void *queue)'),
    queuePoll: lib.func('void *rd_kafka_queue_poll(void *queue, int timeout_ms)'),
    eventType: lib.func('int rd_kafka_event_type(void *event)'),
    eventNextMessage: lib.func('void *rd_kafka_event_message_next(void *event)'),
    eventErrorString: lib.func('const char *rd_kafka_event_error_string(void *event)'),
    eventLog: lib.func('int rd_kafka_event_log(void *event, _Out_ const char **facility, _Out_ const char **text, _Out_ int *level)'),
    eventDestroy: lib.func('void rd_kafka_event_destroy(void *event)'),
    versionText: lib.func('const char *rd_kafka_version_str()'),
  };
}

type Binding = ReturnType<typeof bind>;
let binding: Binding | Error | undefined;

/** librdkafka's functions, or why they cannot be had on this machine. */
export function librdkafka(): Binding | Error {
  if (binding === undefined) {
    try {
      const bound = bind(koffi.load(process.platform === 'darwin' ? 'librdkafka.1.dylib' : 'librdkafka.so.1'));
      // The event API with delivery reports, logs and errors on the main queue: librdkafka 1.0.
      binding =
        (bound.version() as number) >= 0x01000000 ? bound : new Error(`librdkafka ${bound.versionText() as string} is older than 1.0`);
    } catch (error) {
      binding = new Error(`librdkafka cannot be loaded (${(error as Error).message}); on Debian: apt-get install librdkafka1`);
    }
  }
  return binding;
}

export interface LibrdkafkaProducerOptions {
  brokers: string[];
  clientId: string;
  /** librdkafka properties beside the producer's own (`security.protocol`, `sasl.*`, `ssl.*`, ...). */
  properties?: Record<string, string>;
  /** How long a record may wait for its partition's leader before its batch fails (30 s). */
  deliveryTimeoutMs?: number;
  /** librdkafka's errors (a broker down, all brokers down, ...) and its warnings. */
  onProblem?(message: string): void;
}

interface Batch {
  waiting: number;
  failure: string | undefined;
  settle(): void;
}

export class LibrdkafkaProducer {
  private readonly lib: Binding;
  private readonly rk: unknown;
  private readonly queue: unknown;
  private readonly topics = new Map<string, unknown>();
  /** Where each record's value and key are written as UTF-8 for librdkafka to copy, instead of a Buffer per record. */
  private values: Buffer = Buffer.allocUnsafeSlow(0);
  private keys: Buffer = Buffer.allocUnsafeSlow(0);
  private tail: Promise<void> = Promise.resolve();
  private batch: Batch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pollMs = POLL_FIRST_MS;
  private readonly idle: NodeJS.Timeout;
  private closing: Promise<void> | undefined;
  /** Set by `abandon`: batches not yet produced are refused, those produced fail. */
  private abandoned = false;
  private destroyed = false;

  /** Throws when librdkafka is missing or refuses a property (its message names it). */
  constructor(private readonly options: LibrdkafkaProducerOptions) {
    const lib = librdkafka();
    if (lib instanceof Error) throw lib;
    this.lib = lib;
    if (options.deliveryTimeoutMs !== undefined && !(options.deliveryTimeoutMs >= 1)) {
      throw new Error(`librdkafka producer: a delivery timeout of ${options.deliveryTimeoutMs} ms would let a batch wait forever`);
    }
    for (const [name, value] of Object.entries(options.properties ?? {})) {
      if (FORBIDDEN[name] === value.trim().toLowerCase()) {
        throw new Error(`librdkafka producer: ${name}=${value} would leave batches waiting for reports that never come`);
      }
    }
    const properties: Record<string, string> = {
      'bootstrap.servers': options.brokers.join(','),
      'client.id': options.clientId,
      acks: 'all',
      // Kafka's Java client's partitioner (and kafkajs's default): a key lands where theirs would.
      partitioner: 'murmur2_random',
      'message.timeout.ms': String(options.deliveryTimeoutMs ?? 30_000),
      'socket.nagle.disable': 'true',
      // One request at a time per broker: a retried request cannot overtake the next (order per
      // key without idempotence, as kafkajs sent one batch at a time), and the local mock broker
      // holds the answer to a second request sent before the first was answered for ~40 ms (its
      // socket's Nagle against the client's delayed ACK). A batch's records still leave as one
      // request per broker.
      'max.in.flight.requests.per.connection': '1',
      'log.queue': 'true',
      ...options.properties,
    };
    const conf = lib.confNew();
    const error = Buffer.alloc(512);
    for (const [name, value] of Object.entries(properties)) {
      if (lib.confSet(conf, name, value, error, error.length) !== 0) {
        lib.confDestroy(conf);
        throw new Error(`librdkafka: ${cString(error)}`);
      }
    }
    lib.confSetEvents(conf, EVENT_DR | EVENT_ERROR | EVENT_LOG);
    this.rk = lib.create(PRODUCER, conf, error, error.length);
    if (!this.rk) {
      lib.confDestroy(conf);
      throw new Error(`librdkafka: ${cString(error)}`);
    }
    this.queue = lib.mainQueue(this.rk);
    lib.setLogQueue(this.rk, null);
    // Errors and logs that come between batches (a broker down while nothing is produced).
    this.idle = setInterval(() => {
      if (this.batch === null) this.poll();
    }, IDLE_POLL_MS);
    this.idle.unref();
  }

  /**
   * Produces the records; settles once librdkafka reported each delivered (or one failed).
   * Batches go one after another; once `close` is called, none is taken (those queued before it still go).
   */
  publish(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (this.closing) return Promise.reject(new Error('the producer is closed'));
    const sent = this.tail.then(() => this.send(topic, records));
    this.tail = sent.catch(() => {});
    return sent;
  }

  private send(topic: string, records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.abandoned) return Promise.reject(new Error('the producer was closed before this batch was sent'));
    const { lib } = this;
    if (records.some((record) => record.headers !== undefined)) {
      return Promise.reject(new Error('the librdkafka producer does not send record headers'));
    }
    // Everything that can throw before the first record is produced: a batch that rejects must
    // have no record left to report, or its reports would be counted against the next batch.
    const rkt = this.topic(topic);
    this.values = room(this.values, records, 'value');
    this.keys = room(this.keys, records, 'key');
    const { values, keys } = this;
    let produced = 0;
    let refused: string | undefined;
    try {
      for (const record of records) {
        // librdkafka copies the bytes (MSG_F_COPY): each record's are written over the last's.
        const value = typeof record.value === 'string' ? values : record.value;
        const valueLength = typeof record.value === 'string' ? values.write(record.value) : value.length;
        const keyLength = record.key === null ? 0 : keys.write(record.key);
        if (
          lib.produce(rkt, PARTITION_UNASSIGNED, MSG_F_COPY, value, valueLength, record.key === null ? null : keys, keyLength, null) !== 0
        ) {
          refused = lib.errorString(lib.lastError()) as string;
          break;
        }
        produced++;
      }
    } catch (error) {
      refused = (error as Error).message;
    }
    if (refused !== undefined) refused = `${records.length - produced} of ${records.length} records refused: ${refused}`;
    return new Promise<void>((resolve, reject) => {
      const batch: Batch = {
        waiting: produced,
        failure: refused,
        settle: () => {
          this.batch = null;
          if (batch.failure === undefined) resolve();
          else reject(new Error(batch.failure));
        },
      };
      this.batch = batch;
      this.pollMs = POLL_FIRST_MS;
      this.poll();
    });
  }

  private topic(name: string): unknown {
    let rkt = this.topics.get(name);
    if (rkt === undefined) {
      rkt = this.lib.topicNew(this.rk, name, null);
      if (!rkt) throw new Error(`librdkafka: topic ${JSON.stringify(name)}: ${this.lib.errorString(this.lib.lastError()) as string}`);
      this.topics.set(name, rkt);
    }
    return rkt;
  }

  /** Reads the events queued so far; while a batch waits, again a little later (POLL_FIRST_MS, doubling to POLL_MAX_MS). */
  private poll(): void {
    const { lib } = this;
    this.timer = null;
    for (let event = lib.queuePoll(this.queue, 0); event; event = lib.queuePoll(this.queue, 0)) {
      const type = lib.eventType(event) as number;
      if (type === EVENT_DR) this.delivered(event);
      else if (type === EVENT_ERROR) this.options.onProblem?.(lib.eventErrorString(event) as string);
      else if (type === EVENT_LOG) {
        const facility: (string | null)[] = [null];
        const text: (string | null)[] = [null];
        const level = [7];
        lib.eventLog(event, facility, text, level);
        // Syslog levels: 0-4 are emergencies to warnings; 5-7 notices, information, debugging.
        if (level[0]! <= 4) this.options.onProblem?.(`${facility[0] ?? ''}: ${text[0] ?? ''}`);
      }
      lib.eventDestroy(event);
    }
    const batch = this.batch;
    if (batch === null) return;
    if (batch.waiting <= 0) batch.settle();
    else {
      this.timer = setTimeout(() => this.poll(), this.pollMs);
      this.pollMs = Math.min(this.pollMs * 2, POLL_MAX_MS);
    }
  }

  private delivered(event: unknown): void {
    const { lib } = this;
    for (let message = lib.eventNextMessage(event); message; message = lib.eventNextMessage(event)) {
      // rd_kafka_message_t starts with its rd_kafka_resp_err_t.
      const error = koffi.decode(message, 'int') as number;
      if (this.batch === null) continue;
      this.batch.waiting--;
      if (error !== 0) this.batch.failure ??= `delivery failed: ${lib.errorString(error) as string}`;
    }
  }

  /** Waits for the batch in flight, then frees librdkafka's handles (its threads stop); once, however often called. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Closes without waiting for deliveries: the records not yet delivered fail their batches
   * (librdkafka purges them), and batches not yet produced are refused. For a shutdown that
   * can wait no longer, once what could be delivered was.
   */
  abandon(): Promise<void> {
    this.abandoned = true;
    if (!this.destroyed) this.lib.purge(this.rk, PURGE_QUEUE | PURGE_INFLIGHT);
    return this.close();
  }

  private async shutdown(): Promise<void> {
    await this.tail;
    this.destroyed = true;
    clearInterval(this.idle);
    if (this.timer) clearTimeout(this.timer);
    const { lib } = this;
    for (const rkt of this.topics.values()) lib.topicDestroy(rkt);
    this.topics.clear();
    lib.queueDestroy(this.queue);
    // rd_kafka_destroy joins librdkafka's threads: off the event loop.
    await new Promise<void>((resolve) => lib.destroy.async(this.rk, () => resolve()));
  }
}

/**
 * `scratch`, or a larger one, with room for the UTF-8 of every record's `field` (3 bytes per
 * UTF-16 unit at most). Throws when one is neither text nor bytes (nor a null key), before
 * any record of the batch is produced.
 */
function room(scratch: Buffer, records: OutgoingRecord[], field: 'key' | 'value'): Buffer {
  let longest = 0;
  for (const record of records) {
    const text: unknown = record[field];
    if (typeof text === 'string') longest = Math.max(longest, text.length);
    else if (!Buffer.isBuffer(text) && !(text === null && field === 'key')) {
      throw new TypeError(`a record's ${field} must be of type string or a Buffer, not ${text === null ? 'null' : typeof text}`);
    }
  }
  return 3 * longest <= scratch.length ? scratch : Buffer.allocUnsafeSlow(Math.max(3 * longest, 2 * scratch.length));
}

function cString(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end < 0 ? buffer.length : end);
}
