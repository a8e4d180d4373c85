import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  buildProfile,
  createLogger,
  createRandom,
  createRegistry,
  MemoryEventLog,
  recordBytes,
  type DeadLetter,
  type LogRecord,
} from '@tributary/shared';
import { TransactionMarkerLog } from '../../../test/support/transaction-markers.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { MemoryJoinStore, OfferError, SweepError } from '../src/join-store.js';
import { RETIRE_AFTER_MS, startMonitor, type Monitor, type MonitorOptions } from '../src/monitor.js';

let monitor: Monitor | null = null;
afterEach(async () => {
  await monitor?.stop();
  monitor = null;
});

const prediction = (id: string, score: number) => ({
  prediction_id: `p-${id}`,
  request_id: id,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  score,
  predicted_at: Date.now(),
  latency_ms: 1.2,
});

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** A monitor's settings on an event log, with an in-memory join store; `overrides` replace them. */
const settings = (eventLog: MemoryEventLog, registry: ReturnType<typeof createRegistry>, overrides: Partial<MonitorOptions> = {}) => ({
  eventLog,
  topics: { predictions: 'predictions', labels: 'labels', deadLetter: 'dead-letter' },
  groupId: 'monitor-test',
  registry,
  logger: createLogger('test', 'silent'),
  joins: new MemoryJoinStore(DAY, HOUR),
  joinWindowMs: DAY,
  thresholdOf: () => 0.5,
  profileOf: () => null,
  maxSeries: 10,
  ...overrides,
});

/** A monitor on an in-memory event log and join store; `overrides` replace its settings. */
async function boot(overrides: Partial<MonitorOptions> = {}, eventLog = new MemoryEventLog()) {
  const registry = createRegistry({ defaultMetrics: false });
  monitor = await startMonitor(settings(eventLog, registry, overrides));
  return { eventLog, registry, monitor };
}

/** A join store whose offers wait, while `hang.stuck` is set, until `hang.release` is called: a batch that never ends. */
function hangingJoins() {
  const joins = new MemoryJoinStore(DAY, HOUR);
  const hang: { stuck: boolean; release?: () => void } = { stuck: false };
  const offer = joins.offer.bind(joins);
  joins.offer = async (offers) => {
    if (hang.stuck) await new Promise<void>((resolve) => (hang.release = resolve));
    return offer(offers);
  };
  return { joins, hang };
}

describe('monitor: times far ahead', () => {
  it('dead-letters labels and predictions stamped more than a day ahead (1e308 would never expire), and joins the rest of their batch', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.9)) },
      { key: 'b', value: JSON.stringify({ ...prediction('b', 0.9), predicted_at: 1e308 }) },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) },
      { key: 'b', value: JSON.stringify({ request_id: 'b', label: 1, ts: 1e308 }) },
      { key: 'c', value: JSON.stringify({ request_id: 'c', label: 1, ts: Date.now() + 3 * DAY }) },
    ]);
    await waitFor(
      async () => /tributary_monitor_records_total\{stream="labels",outcome="dead_lettered"\} 2/.test(await registry.metrics()),
      {
        what: 'the labels consumed',
      },
    );
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="dead_lettered"\} 1/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 1/);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.source.topic, l.reason]).sort()).toEqual([
      ['labels', 'invalid'],
      ['labels', 'invalid'],
      ['predictions', 'invalid'],
    ]);
    expect(letters.map((l) => l.detail)).toEqual(
      expect.arrayContaining([
        // After the latest time a date holds, as every record's time; then more than a day ahead of the monitor's clock.
        'ts: must be an epoch-milliseconds integer (0 to 8.64e15) or an RFC 3339 date-time',
        expect.stringMatching(/^ts \d+ is more than a day ahead/),
        expect.stringMatching(/predicted_at 1e\+308/),
      ]),
    );
  });
});

describe('monitor: label values read from records', () => {
  it('dead-letters as invalid, saying why, a label timed at a leap second (a date-time no Date holds)', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.publish('labels', [{ key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: '2016-12-31T23:59:60Z' }) }]);
    await waitFor(async () => /\{stream="labels",outcome="dead_lettered"\} 1\n/.test(await registry.metrics()), {
      what: 'the label consumed',
    });
    const [letter] = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letter).toMatchObject({
      reason: 'invalid',
      detail: 'ts "2016-12-31T23:59:60Z" is not a time the monitor can place (a leap second?)',
    });
  });

  it('dead-letters as invalid a prediction whose model, version, variant or ids are longer than the service logs, so /metrics stays small', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.9)) },
      { key: 'b', value: JSON.stringify({ ...prediction('b', 0.9), variant: 'W'.repeat(900_000) }) },
      { key: 'c', value: JSON.stringify({ ...prediction('c', 0.9), model: { name: 'M'.repeat(100_000), version: '1' } }) },
      { key: 'd', value: JSON.stringify({ ...prediction('d', 0.9), model: { name: 'fraud_detector', version: 'V'.repeat(100_000) } }) },
      { key: 'e', value: JSON.stringify({ ...prediction('e', 0.9), request_id: 'R'.repeat(100_000) }) },
    ]);
    await waitFor(async () => /\{stream="predictions",outcome="dead_lettered"\} 4\n/.test(await registry.metrics()), {
      what: 'the predictions consumed',
    });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 1\n/);
    expect(text.length).toBeLessThan(100_000);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.reason, l.detail.split(':')[0]]).sort()).toEqual([
      ['invalid', 'model.name'],
      ['invalid', 'model.version'],
      ['invalid', 'request_id'],
      ['invalid', 'variant'],
    ]);
  });

  it('dead-letters as invalid a prediction or a label whose request id, model, defaulted feature or feature group holds a lone surrogate or NUL', async () => {
    // Two such request ids would be one in Redis; two such names one U+FFFD in /metrics, or one series where NUL joins them.
    const { eventLog, registry } = await boot();
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('r\ud800', 0.9)) },
      { key: 'b', value: JSON.stringify({ ...prediction('b', 0.9), model: { name: 'fraud\udfff', version: '1' } }) },
      { key: 'c', value: JSON.stringify(prediction('r\ud83d\ude00', 0.9)) },
      { key: 'd', value: JSON.stringify({ ...prediction('d', 0.9), model: { name: 'fraud', version: '1\u00002' } }) },
      { key: 'e', value: JSON.stringify({ ...prediction('e', 0.9), defaulted: ['user:count_1h', 'user:\udc00'] }) },
      { key: 'f', value: JSON.stringify({ ...prediction('f', 0.9), feature_age_ms: { 'group\ud800': 10 } }) },
    ]);
    await eventLog.publish('labels', [{ key: 'a', value: JSON.stringify({ request_id: 'r\udc00', label: 1, ts: Date.now() }) }]);
    await waitFor(
      async () => {
        const text = await registry.metrics();
        return (
          /\{stream="predictions",outcome="dead_lettered"\} 5\n/.test(text) && /\{stream="labels",outcome="dead_lettered"\} 1\n/.test(text)
        );
      },
      { what: 'the records consumed' },
    );
    // A pair of surrogates is a character like any other.
    expect(await registry.metrics()).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 1\n/);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    const label = 'must be well-formed Unicode text (no lone surrogate) without NUL';
    expect(letters.map((l) => [l.source.topic, l.reason, l.detail]).sort()).toEqual([
      ['labels', 'invalid', 'request_id: must be well-formed Unicode text (no lone surrogate)'],
      ['predictions', 'invalid', `defaulted.1: ${label}`],
      ['predictions', 'invalid', `feature_age_ms.group\ud800: ${label}`],
      ['predictions', 'invalid', `model.name: ${label}`],
      ['predictions', 'invalid', `model.version: ${label}`],
      ['predictions', 'invalid', 'request_id: must be well-formed Unicode text (no lone surrogate)'],
    ]);
  });

  it('joins a label to the predictions of models whose names differ only in where a colon falls', async () => {
    const { eventLog, registry } = await boot();
    const models = [
      { name: 'a:b', version: '1' },
      { name: 'a', version: 'b:1' },
      { name: 'a\\', version: ':b:1' },
    ];
    await eventLog.publish(
      'predictions',
      models.map((model) => ({ key: 'r', value: JSON.stringify({ ...prediction('r', 0.9), model }) })),
    );
    await eventLog.publish('labels', [{ key: 'r', value: JSON.stringify({ request_id: 'r', label: 1, ts: Date.now() }) }]);
    await waitFor(async () => /\{stream="labels",outcome="joined"\} 3\n/.test(await registry.metrics()), { what: 'three pairs' });
    const text = await registry.metrics();
    expect(text).not.toMatch(/outcome="duplicate"\} [1-9]/);
    for (const { name, version } of models) {
      const labels = `model="${name.replace(/\\/g, '\\\\')}",version="${version}",variant="champion",window="1h"`;
      expect(text).toContain(`tributary_model_labelled_predictions{${labels}} 1\n`);
    }
  });

  it('counts a slice value longer than a label value may be, or not well-formed, as __other__, and does not store it whole', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    let offered = 0;
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      offer: async (offers: Parameters<MemoryJoinStore['offer']>[0]) => {
        for (const offer of offers) offered = Math.max(offered, offer.value.length);
        return store.offer(offers);
      },
    });
    const { eventLog, registry } = await boot({ sliceFields: ['country'], joins });
    const countries = ['US', 'W'.repeat(900_000), 'X'.repeat(257), '\ud800', '\udbff'];
    await eventLog.publish(
      'predictions',
      countries.map((country, i) => ({ key: `s${i}`, value: JSON.stringify({ ...prediction(`s${i}`, 0.9), request: { country } }) })),
    );
    await eventLog.publish(
      'labels',
      countries.map((_, i) => ({ key: `s${i}`, value: JSON.stringify({ request_id: `s${i}`, label: 1, ts: Date.now() }) })),
    );
    await waitFor(async () => /stream="labels",outcome="joined"\} 5\n/.test(await registry.metrics()), { what: 'the joins' });
    const text = await registry.metrics();
    expect(offered).toBeLessThan(1_000);
    expect(text.length).toBeLessThan(100_000);
    const labelled = [...text.matchAll(/tributary_slice_quality\{[^}]*field="country",slice="([^"]*)",metric="labelled"\} (\S+)/g)];
    expect(labelled.map(([, slice, count]) => [slice, Number(count)]).sort()).toEqual([
      ['US', 1],
      ['__other__', 4],
    ]);
  });
});

describe('monitor: boolean slice fields', () => {
  it('slices by a boolean request field as true and false, as monitor compare does, not as __missing__', async () => {
    const { eventLog, registry } = await boot({ sliceFields: ['vip'] });
    const vips = [true, false, true];
    await eventLog.publish(
      'predictions',
      vips.map((vip, i) => ({ key: `b${i}`, value: JSON.stringify({ ...prediction(`b${i}`, 0.9), request: { vip } }) })),
    );
    await eventLog.publish(
      'labels',
      vips.map((_, i) => ({ key: `b${i}`, value: JSON.stringify({ request_id: `b${i}`, label: 1, ts: Date.now() }) })),
    );
    await waitFor(async () => /stream="labels",outcome="joined"\} 3\n/.test(await registry.metrics()), { what: 'the joins' });
    const text = await registry.metrics();
    const labelled = [...text.matchAll(/tributary_slice_quality\{[^}]*field="vip",slice="([^"]*)",metric="labelled"\} (\S+)/g)];
    expect(labelled.map(([, slice, count]) => [slice, Number(count)]).sort()).toEqual([
      ['false', 1],
      ['true', 2],
    ]);
  });
});

describe('monitor: times older than the join window', () => {
  it('dead-letters as late a prediction and a label older than the join window allows, counting neither', async () => {
    const { eventLog, registry } = await boot();
    const old = Date.now() - 2 * DAY - 1;
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify({ ...prediction('a', 0.9), predicted_at: old }) },
      { key: 'a', value: JSON.stringify(prediction('b', 0.9)) },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: new Date(old).toISOString() }) },
      { key: 'a', value: JSON.stringify({ request_id: 'b', label: 1, ts: Date.now() }) },
    ]);
    await waitFor(
      async () => {
        const text = await registry.metrics();
        return /\{stream="labels",outcome="accepted"\} 1/.test(text) && /\{stream="predictions",outcome="accepted"\} 1/.test(text);
      },
      { what: 'both batches handled' },
    );
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="dead_lettered"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_records_total\{stream="labels",outcome="dead_lettered"\} 1\n/);
    expect(text).toMatch(
      /tributary_monitor_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} 1\n/,
    );
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 1\n/);
    expect(text).toMatch(/tributary_dead_letter_records_total\{consumer="monitor-test",reason="late"\} 2\n/);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.source.topic, l.reason]).sort()).toEqual([
      ['labels', 'late'],
      ['predictions', 'late'],
    ]);
    expect(letters.map((l) => l.detail).sort()).toEqual([
      `predicted_at ${old} is older than the join window (${DAY} ms) allows: it could no longer be joined`,
      `ts "${new Date(old).toISOString()}" is older than the join window (${DAY} ms) allows: it could no longer be joined`,
    ]);
  });
});

describe('monitor: a batch delivered again', () => {
  it('counts a batch once when its offers or its dead letters failed before and it was retried', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    let offersToFail = 2;
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      offer: async (offers: Parameters<MemoryJoinStore['offer']>[0]) => {
        if (offersToFail > 0) {
          offersToFail--;
          throw new Error('redis unavailable');
        }
        return store.offer(offers);
      },
    });
    const { eventLog, registry } = await boot({ joins });
    let lettersToFail = 2;
    const publish = eventLog.publish.bind(eventLog);
    eventLog.publish = async (topic, records) => {
      if (topic === 'dead-letter' && lettersToFail > 0) {
        lettersToFail--;
        throw new Error('broker unavailable');
      }
      return publish(topic, records);
    };
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify({ ...prediction('a', 0.02), defaulted: ['user:count_1h'], feature_age_ms: { user: 500 } }) },
      { key: 'a', value: '{"prediction_id": 3' },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) },
      { key: 'x', value: JSON.stringify({ request_id: 'x', label: 2, ts: Date.now() }) },
    ]);
    await waitFor(
      async () => {
        const text = await registry.metrics();
        return (
          /\{stream="labels",outcome="accepted"\} 1/.test(text) &&
          /\{stream="labels",outcome="dead_lettered"\} 1/.test(text) &&
          /\{stream="predictions",outcome="dead_lettered"\} 1/.test(text)
        );
      },
      { what: 'every batch handled' },
    );
    expect(offersToFail).toBe(0);
    expect(lettersToFail).toBe(0);
    const text = await registry.metrics();
    expect(text).toMatch(
      /tributary_monitor_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} 1\n/,
    );
    expect(text).toMatch(/tributary_monitor_score_count\{model="fraud_detector",version="1",variant="champion"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_prediction_latency_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_feature_defaults_total\{model="fraud_detector",version="1",feature="user:count_1h"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_feature_age_seconds_count\{model="fraud_detector",group="user"\} 1\n/);
    expect(text).toMatch(/tributary_model_estimated_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1\n/);
    expect(text).toMatch(/tributary_dead_letter_records_total\{consumer="monitor-test",reason="invalid"\} 1\n/);
    // The pair is joined once, by whichever side came second (the log keeps no order across topics).
    expect(text.match(/tributary_monitor_joins_total\{stream="\w+",outcome="joined"\} \d+/g)).toEqual([expect.stringMatching(/ 1$/)]);
    expect(text).toMatch(/tributary_dead_letter_records_total\{consumer="monitor-test",reason="malformed"\} 1\n/);
    // Each dead letter published once, though the publishes and offers of the batches failed twice before.
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.source.topic, l.reason]).sort()).toEqual([
      ['labels', 'invalid'],
      ['predictions', 'malformed'],
    ]);
  });
});

describe('monitor: large bad records', () => {
  it("dead-letters a fetch of them in sends within the broker's limit on a batch", async () => {
    const { eventLog, registry } = await boot();
    await eventLog.ensureTopics([{ name: 'dead-letter', partitions: 1 }]);
    const publish = eventLog.publish.bind(eventLog);
    eventLog.publish = async (topic, records) => {
      // The broker's default message.max.bytes, refused again on every retry.
      if (topic === 'dead-letter' && records.reduce((sum, record) => sum + recordBytes(record), 0) > 1_048_588) {
        throw new Error('MESSAGE_TOO_LARGE');
      }
      return publish(topic, records);
    };
    // ~1 MB of malformed predictions (their dead letters ~1.3 MB).
    const malformed = `{"prediction_id": "${'x'.repeat(2_500)}"`;
    await eventLog.publish(
      'predictions',
      Array.from({ length: 400 }, () => ({ key: 'a', value: malformed })),
    );
    await waitFor(async () => /\{stream="predictions",outcome="dead_lettered"\} 400/.test(await registry.metrics()), {
      what: 'the batch dead-lettered',
    });
    expect(eventLog.records('dead-letter')).toHaveLength(400);
  });
});

describe('monitor: dead letters sent in parts', () => {
  it('publishes each dead letter once when a later send of its batch failed and the batch came again', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.ensureTopics([{ name: 'dead-letter', partitions: 1 }]);
    const publish = eventLog.publish.bind(eventLog);
    let sends = 0;
    eventLog.publish = async (topic, records) => {
      // The batch's second send of dead letters fails, once.
      if (topic === 'dead-letter' && ++sends === 2) throw new Error('broker unavailable');
      return publish(topic, records);
    };
    // Three malformed labels of ~400 KB: their dead letters leave in more than one send.
    const malformed = `{"request_id": "${'x'.repeat(400_000)}"`;
    await eventLog.publish(
      'labels',
      Array.from({ length: 3 }, () => ({ key: 'a', value: malformed })),
    );
    await waitFor(async () => /\{stream="labels",outcome="dead_lettered"\} 3/.test(await registry.metrics()), {
      what: 'the batch dead-lettered',
    });
    expect(sends).toBeGreaterThan(2);
    const offsets = eventLog.records('dead-letter').map((r) => (JSON.parse(r.value!.toString()) as DeadLetter).source.offset);
    expect(offsets).toEqual(['0', '1', '2']);
  });
});

describe('monitor: a batch delivered again after it was applied', () => {
  it('counts the records of a batch once when the consumer delivers them again (offsets not committed before a rebalance)', async () => {
    const eventLog = new MemoryEventLog();
    // Each batch is delivered in part, then whole: as Kafka delivers again, from the last
    // committed offset, records a process applied already.
    const subscribe = eventLog.subscribe.bind(eventLog);
    eventLog.subscribe = async (options) =>
      subscribe({
        ...options,
        eachBatch: async (batch) => {
          await options.eachBatch({ ...batch, records: batch.records.slice(0, Math.ceil(batch.records.length / 2)) });
          await options.eachBatch(batch);
        },
      });
    const { registry } = await boot({ eventLog });
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.9)) },
      { key: 'a', value: JSON.stringify(prediction('b', 0.2)) },
      { key: 'a', value: '{"prediction_id": 3' },
    ]);
    await waitFor(async () => /\{stream="predictions",outcome="accepted"\} 2\n/.test(await registry.metrics()), {
      what: 'the predictions',
    });
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) },
      { key: 'a', value: JSON.stringify({ request_id: 'b', label: 0, ts: Date.now() }) },
    ]);
    await waitFor(async () => /\{stream="labels",outcome="accepted"\} 2\n/.test(await registry.metrics()), { what: 'the labels' });
    const text = await registry.metrics();
    expect(text).toMatch(/\{stream="predictions",outcome="dead_lettered"\} 1\n/);
    expect(text).toMatch(
      /tributary_monitor_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} 2\n/,
    );
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 2\n/);
    expect(text).not.toMatch(/outcome="duplicate"/);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 2\n/);
    expect(eventLog.records('dead-letter')).toHaveLength(1);
  });
});

describe('monitor: a join store that holds something else for a request', () => {
  it('counts those records as not joined (unusable, unreadable) and the batch once, without failing it', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      offer: async (offers: Parameters<MemoryJoinStore['offer']>[0]) =>
        (await store.offer(offers)).map((result, i) =>
          // Request x's key holds another type; request y's stored label is no label of the monitor's.
          offers[i]!.requestId === 'x'
            ? { kind: 'unusable' as const }
            : offers[i]!.requestId === 'y' && result.kind === 'joined'
              ? { ...result, others: ['garbage'] }
              : result,
        ),
    });
    const { eventLog, registry } = await boot({ joins });
    await eventLog.publish(
      'labels',
      ['y', 'z'].map((id) => ({ key: id, value: JSON.stringify({ request_id: id, label: 1, ts: Date.now() }) })),
    );
    await waitFor(async () => /\{stream="labels",outcome="accepted"\} 2\n/.test(await registry.metrics()), { what: 'the labels' });
    await eventLog.publish(
      'predictions',
      ['x', 'y', 'z'].map((id) => ({ key: id, value: JSON.stringify(prediction(id, 0.9)) })),
    );
    await waitFor(async () => /\{stream="predictions",outcome="accepted"\} 3\n/.test(await registry.metrics()), {
      what: 'the predictions',
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="unusable"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="unreadable"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="joined"\} 1\n/);
    // Counted once: the batch did not fail and come again.
    expect(text).toMatch(/\{stream="predictions",outcome="accepted"\} 3\n/);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 1\n/);
  });
});

describe('monitor: a topic recreated while it runs', () => {
  it('counts the records of the new topic, whose offsets start over below those it applied', async () => {
    const eventLog = new MemoryEventLog();
    let deliver:
      ((batch: { topic: string; partition: number; records: LogRecord[]; highWatermark: string }) => Promise<unknown>) | undefined;
    const subscribe = eventLog.subscribe.bind(eventLog);
    eventLog.subscribe = async (options) => {
      deliver = options.eachBatch;
      return subscribe(options);
    };
    const { registry } = await boot({}, eventLog);
    // One key: one partition, offsets 0 to 2.
    await eventLog.publish(
      'predictions',
      ['a', 'b', 'c'].map((id) => ({ key: 'k', value: JSON.stringify(prediction(id, 0.9)) })),
    );
    const { partition } = eventLog.records('predictions')[2]!;
    expect(eventLog.records('predictions')[2]!.offset).toBe('2');
    await waitFor(async () => /\{stream="predictions",outcome="accepted"\} 3\n/.test(await registry.metrics()), {
      what: 'the predictions',
    });
    // The topic deleted and created again: its first records at offsets 0 and 1, the log ending at 2.
    const records = ['d', 'e'].map((id, offset) => ({
      topic: 'predictions',
      partition,
      offset: String(offset),
      key: 'k',
      value: Buffer.from(JSON.stringify(prediction(id, 0.2))),
      timestamp: Date.now(),
      headers: {},
    }));
    await deliver!({ topic: 'predictions', partition, records, highWatermark: '2' });
    expect(await registry.metrics()).toMatch(/\{stream="predictions",outcome="accepted"\} 5\n/);
  });
});

describe('monitor: offers whose answers were lost', () => {
  it('observes the pairs joined by a batch whose reply was lost after the store applied it, once, when the batch is retried', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    let replyLost = false;
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      offer: async (offers: Parameters<MemoryJoinStore['offer']>[0]) => {
        const results = await store.offer(offers);
        if (offers[0]?.side === 'label' && !replyLost) {
          // Applied, and the connection dropped before the answer.
          replyLost = true;
          throw new Error('Connection is closed.');
        }
        return results;
      },
    });
    const { eventLog, registry } = await boot({ joins });
    const shadow = { ...prediction('a', 0.2), prediction_id: 's-a', model: { name: 'fraud_detector', version: '2' }, variant: 'shadow' };
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.9)) },
      { key: 'a', value: JSON.stringify(shadow) },
    ]);
    await waitFor(async () => /\{stream="predictions",outcome="accepted"\} 2/.test(await registry.metrics()), { what: 'the predictions' });
    await eventLog.publish('labels', [{ key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) }]);
    await waitFor(async () => /\{stream="labels",outcome="accepted"\} 1/.test(await registry.metrics()), { what: 'the label' });
    expect(replyLost).toBe(true);
    const text = await registry.metrics();
    // The label joined both predictions in the call whose reply was lost: observed once each.
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 1\n/);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="2",variant="shadow",window="1h"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 2\n/);
    expect(text).toMatch(/tributary_monitor_joins_again_total\{stream="labels"\} 2\n/);
    expect(text).not.toMatch(/outcome="duplicate"/);
    expect(text).toMatch(/tributary_monitor_label_delay_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1\n/);
  });

  it('observes the pairs joined by offers that were applied before the others failed, once, though the batch is retried', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    let failLabels = true;
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      offer: async (offers: Parameters<MemoryJoinStore['offer']>[0]) => {
        const results = await store.offer(offers);
        if (offers[0]?.side === 'label' && failLabels) {
          failLabels = false;
          // The label joined; the call of the second label failed (no answer).
          throw new OfferError([results[0]!, null], new Error('WRONGTYPE'));
        }
        return results;
      },
    });
    const { eventLog, registry } = await boot({ joins });
    await eventLog.publish('predictions', [{ key: 'a', value: JSON.stringify(prediction('a', 0.9)) }]);
    await waitFor(async () => /\{stream="predictions",outcome="accepted"\} 1/.test(await registry.metrics()), { what: 'the prediction' });
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) },
      { key: 'a', value: JSON.stringify({ request_id: 'b', label: 0, ts: Date.now() }) },
    ]);
    await waitFor(async () => /\{stream="labels",outcome="accepted"\} 2/.test(await registry.metrics()), { what: 'the labels' });
    expect(failLabels).toBe(false);
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_label_delay_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 1\n/);
  });

  it('observes the pairs answered again to records another process offered, but gives no bandit reward for them again', async () => {
    const joins = new MemoryJoinStore(DAY, HOUR);
    const rewards: [string, number, number][] = [];
    const rollouts = {
      addReward: async (_model: string, version: string, trials: number, reward: number) => void rewards.push([version, trials, reward]),
    };
    const { eventLog, registry } = await boot({ joins, rollouts });
    await eventLog.publish('predictions', [{ key: 'a', value: JSON.stringify({ ...prediction('a', 0.9), variant: 'bandit' }) }]);
    await eventLog.publish('labels', [{ key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) }]);
    await waitFor(async () => /\{stream="labels",outcome="joined"\} 1/.test(await registry.metrics()), { what: 'the join' });
    expect(rewards).toEqual([['1', 1, 1]]);
    // Another process (a group replaying the topics) offers the same records to the same store.
    const replaying = createRegistry({ defaultMetrics: false });
    const other = await startMonitor(
      settings(eventLog, replaying, {
        groupId: 'monitor-replay',
        joins: Object.assign(Object.create(joins) as MemoryJoinStore, { close: async () => {} }),
        rollouts,
      }),
    );
    try {
      await waitFor(async () => /\{stream="labels",outcome="accepted"\} 1/.test(await replaying.metrics()), { what: 'the replay' });
      const text = await replaying.metrics();
      expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="bandit",window="1h"\} 1\n/);
      expect(text).toMatch(/tributary_monitor_joins_again_total\{stream="[a-z]+"\} 1\n/);
      expect(rewards).toEqual([['1', 1, 1]]);
    } finally {
      await other.stop();
    }
  });
});

describe('monitor: expiry', () => {
  it('counts what a sweep that failed in part removed', async () => {
    const store = new MemoryJoinStore(DAY, HOUR);
    const joins: MemoryJoinStore = Object.assign(Object.create(store) as MemoryJoinStore, {
      sweep: async () => {
        throw new SweepError({ predictions: 3, labels: 2, taken: 6 }, new Error('WRONGTYPE'));
      },
    });
    const { registry, monitor } = await boot({ joins });
    await expect(monitor.sweep()).rejects.toThrow(/sweep failed in part \(3 predictions and 2 labels expired before\): Error: WRONGTYPE/);
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_join_expired_total\{stream="predictions"\} 3\n/);
    expect(text).toMatch(/tributary_monitor_join_expired_total\{stream="labels"\} 2\n/);
  });

  it('sweeps every side that came due, more than one chunk of the index at a time', async () => {
    const joins = new MemoryJoinStore(DAY, HOUR);
    const { registry, monitor } = await boot({ joins });
    const past = Date.now() - 1_000;
    await joins.offer(
      Array.from({ length: 25_000 }, (_, i) => ({
        side: 'prediction' as const,
        requestId: `r${i}`,
        unit: 'champion:m:1',
        record: `${i}`,
        value: 'p',
        deadline: past,
      })),
    );
    await monitor.sweep();
    expect(await registry.metrics()).toMatch(/tributary_monitor_join_expired_total\{stream="predictions"\} 25000/);
  });
});

describe('monitor: bounded label values', () => {
  it('counts odd model names beyond the series bound as other, in the quality board and the score and label-delay histograms too', async () => {
    const { eventLog, registry } = await boot({ maxSeries: 1 });
    const records = Array.from({ length: 200 }, (_, i) => ({
      key: `r${i}`,
      value: JSON.stringify({ ...prediction(`r${i}`, 0.3), model: { name: `model-${i}`, version: '1' } }),
    }));
    await eventLog.publish('predictions', records);
    await eventLog.publish(
      'labels',
      records.map((r) => ({ key: r.key, value: JSON.stringify({ request_id: r.key, label: 0, ts: Date.now() }) })),
    );
    await waitFor(async () => /tributary_monitor_records_total\{stream="labels",outcome="accepted"\} 200/.test(await registry.metrics()), {
      what: 'every record consumed',
    });
    const text = await registry.metrics();
    const series = (name: string) => new Set([...text.matchAll(new RegExp(`^${name}_count\\{([^}]*)\\}`, 'gm'))].map((m) => m[1]!));
    for (const name of ['tributary_monitor_score', 'tributary_monitor_label_delay_seconds']) {
      const found = series(name);
      expect(found.size, name).toBeLessThanOrEqual(65);
      expect(
        [...found].some((labels) => labels.includes('model="other"')),
        name,
      ).toBe(true);
    }
    // The quality of the series beyond the bound is counted under other.
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="other",version="other",variant="other",window="1h"\} 199/);
  });
});

describe('monitor: retiring idle series', () => {
  /** A monitor on a clock the test moves, and records stamped with it. */
  async function retiring(overrides: Partial<MonitorOptions>) {
    const clock = { now: Date.now() };
    const booted = await boot({ ...overrides, clock: () => clock.now });
    const served = (id: string, model: string, version: string, extra: object = {}) => ({
      key: id,
      value: JSON.stringify({
        ...prediction(id, 0.7),
        model: { name: model, version },
        predicted_at: clock.now,
        defaulted: ['user:count_1h'],
        feature_age_ms: { user: 500 },
        ...extra,
      }),
    });
    const label = (id: string) => ({ key: id, value: JSON.stringify({ request_id: id, label: 1, ts: clock.now }) });
    let counts = { predictions: 0, labels: 0 };
    /** Publishes predictions and labels, and waits until the monitor has consumed them. */
    const send = async (predictions: ReturnType<typeof served>[], labels: ReturnType<typeof label>[] = []) => {
      counts = { predictions: counts.predictions + predictions.length, labels: counts.labels + labels.length };
      await booted.eventLog.publish('predictions', predictions);
      if (labels.length > 0) await booted.eventLog.publish('labels', labels);
      for (const [stream, count] of Object.entries(counts)) {
        if (count === 0) continue;
        await waitFor(
          async () =>
            new RegExp(`records_total\\{stream="${stream}",outcome="accepted"\\} ${count}\\b`).test(await booted.registry.metrics()),
          { what: `${count} ${stream} consumed` },
        );
      }
      return booted.registry.metrics();
    };
    const many = (prefix: string, count: number, model: string, version: string, extra: object = {}) =>
      Array.from({ length: count }, (_, i) => served(`${prefix}${i}`, model, version, extra));
    return { ...booted, clock, served, label, send, many };
  }

  it('drops every metric of a series idle for longer than every window, and its place under the bound goes to a new version', async () => {
    const { clock, served, label, send, monitor, registry } = await retiring({ maxSeries: 2 });
    // Version 1 and a model of another name fill both places of the quality board; the other model stays busy.
    const before = await send(
      [served('a', 'fraud_detector', '1'), served('b', 'fraud_detector', '1'), served('k', 'kept', '7')],
      [label('a'), label('b')],
    );
    expect(before).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 2/);
    expect(before).toMatch(/tributary_monitor_feature_defaults_total\{model="fraud_detector",version="1",feature="user:count_1h"\} 2/);

    // A day later the other model serves again; version 1 does not.
    clock.now += RETIRE_AFTER_MS - 3_600_000;
    await send([served('k2', 'kept', '7')]);
    clock.now += 3_600_000 + 1;
    await monitor.sweep();
    const after = await registry.metrics();
    const lines = after.split('\n').filter((line) => !line.startsWith('#'));
    expect(lines.filter((line) => line.includes('model="fraud_detector"'))).toEqual([]);
    // What is still served keeps its series and its counts.
    expect(after).toMatch(/tributary_monitor_predictions_total\{model="kept",version="7",variant="champion",degraded="false"\} 2/);
    expect(after).toMatch(/tributary_monitor_feature_age_seconds_count\{model="kept",group="user"\} 2/);

    // Version 2 gets the place version 1 had: its quality under its own name, not `other`.
    const text = await send([served('c', 'fraud_detector', '2')], [label('c')]);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="2",variant="champion",window="1h"\} 1/);
    expect(text).not.toMatch(/model="other"/);
  });

  it('keeps every metric of a live series counting, and names a version counted as other once a place is free', async () => {
    const random = createRandom(5);
    const profile = buildProfile(
      Array.from({ length: 500 }, () => ({ x: random.next(), score: random.next() })),
      ['x', 'score'].map((name) => ({ name, kind: 'numeric' as const })),
    );
    const { clock, served, label, send, many, monitor, registry } = await retiring({ maxSeries: 2, profileOf: () => profile });
    const features = () => ({ features: { x: random.next() } });
    await send([served('old', 'fraud_detector', '1'), served('k', 'kept', '7')], [label('k')]);
    // Version 2 comes while both places are taken: its quality goes to other, it has no drift window.
    clock.now += 3_600_000;
    const crowded = await send([served('n', 'fraud_detector', '2')], [label('n')]);
    expect(crowded).toMatch(/tributary_model_labelled_predictions\{model="other",version="other",variant="other",window="1h"\} 1/);

    // Version 1 falls idle; kept and version 2 serve on.
    clock.now += RETIRE_AFTER_MS - 3_600_000;
    await send([served('k2', 'kept', '7'), served('n2', 'fraud_detector', '2')], [label('k2')]);
    clock.now += 3_600_000;
    await monitor.sweep();
    const text = await send(
      [...many('kk', 120, 'kept', '7', features()), ...many('nn', 120, 'fraud_detector', '2', features())],
      [label('kk0'), label('nn0'), label('nn1')],
    );
    // kept: every histogram, its quality and its drift window kept counting across the retirement.
    expect(text).toMatch(/tributary_monitor_score_count\{model="kept",version="7",variant="champion"\} 122/);
    expect(text).toMatch(/tributary_monitor_prediction_latency_seconds_count\{model="kept",version="7",variant="champion"\} 122/);
    expect(text).toMatch(/tributary_monitor_label_delay_seconds_count\{model="kept",version="7",variant="champion"\} 3/);
    expect(text).toMatch(/tributary_monitor_feature_age_seconds_count\{model="kept",group="user"\} 122/);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="kept",version="7",variant="champion",window="24h"\} 2/);
    expect(text).toMatch(/tributary_feature_drift\{model="kept",version="7",variant="champion",feature="x",statistic="psi"\}/);
    // Version 2 now under its own name, with a drift window, and other is gone.
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="2",variant="champion",window="1h"\} 2/);
    expect(text).toMatch(/tributary_feature_drift\{model="fraud_detector",version="2",variant="champion",feature="x",statistic="psi"\}/);
    // What it counted under other (n2's score, an hour before the retirement) stays in other's windows until other
    // too falls idle and is retired.
    expect(text).toMatch(
      /tributary_model_quality_estimated\{model="other",version="other",variant="other",window="24h",metric="accuracy"\}/,
    );
    clock.now += RETIRE_AFTER_MS;
    await send([served('k3', 'kept', '7'), served('n3', 'fraud_detector', '2')]);
    await monitor.sweep();
    expect(await registry.metrics()).not.toMatch(/model="other"/);
  });

  it("keeps other's quality windows, counter and histograms while live series count into them, when an idle one under other retires", async () => {
    // a holds the only place of the quality board (MONITOR_MAX_SERIES 1): e's quality, then b's and c's, are counted
    // as other; so are b's and c's counters and histograms (a's feature names and e's tuple fill the label values).
    const { clock, served, label, send, monitor } = await retiring({ maxSeries: 1 });
    const names = Array.from({ length: 62 }, (_, i) => `f${i}`);
    await send([served('a', 'a', '1', { defaulted: names }), served('e', 'e', '1')], [label('a')]);
    clock.now += RETIRE_AFTER_MS - 3_600_000;
    const before = await send(
      [served('a2', 'a', '1', { defaulted: names }), served('b', 'b', '1'), served('c', 'c', '1')],
      [label('a2'), label('b'), label('c')],
    );
    expect(before).toMatch(/tributary_model_labelled_predictions\{model="other",version="other",variant="other",window="24h"\} 2/);
    expect(before).toMatch(/tributary_monitor_predictions_total\{model="other",version="other",variant="other",degraded="false"\} 2/);
    // e has been idle for RETIRE_AFTER_MS and is retired; b and c, seen an hour ago, are live under other.
    clock.now += 3_600_000 + 1;
    await monitor.sweep();
    const after = await send([served('b2', 'b', '1')], [label('b2')]);
    // The board's place is still a's: b's and c's pairs of the last day, and b2's.
    expect(after).toMatch(/tributary_model_labelled_predictions\{model="other",version="other",variant="other",window="24h"\} 3/);
    // e's label values are free: b is named in its counters now, and other's keep their counts (no reset).
    expect(after).toMatch(/tributary_monitor_predictions_total\{model="b",version="1",variant="champion",degraded="false"\} 1/);
    expect(after).toMatch(/tributary_monitor_predictions_total\{model="other",version="other",variant="other",degraded="false"\} 2/);
    expect(after).toMatch(/tributary_monitor_score_count\{model="other",version="other",variant="other"\} 2/);
  });

  it('keeps the quality windows of a live series counted as other in its label values when another series retires', async () => {
    // Model a's tuple, 126 defaulted features and a feature group fill the 128 label values MONITOR_MAX_SERIES 2 allows:
    // model b is counted as other in its counters, but its quality windows are its own (the board has room).
    const { clock, served, label, send, monitor } = await retiring({ maxSeries: 2 });
    const names = Array.from({ length: 126 }, (_, i) => `f${i}`);
    await send([served('a', 'a', '1', { defaulted: names, feature_age_ms: { g: 100 } })]);
    await send(
      Array.from({ length: 20 }, (_, i) => served(`b${i}`, 'b', '1')),
      Array.from({ length: 20 }, (_, i) => label(`b${i}`)),
    );
    clock.now += 20 * 3_600_000;
    const live = await send([served('b-live', 'b', '1')], [label('b-live')]);
    expect(live).toMatch(/tributary_model_labelled_predictions\{model="b",version="1",variant="champion",window="24h"\} 21/);
    // a falls idle and is retired; b, seen 5 hours before, is live.
    clock.now += RETIRE_AFTER_MS - 20 * 3_600_000 + 1;
    await monitor.sweep();
    const next = await send([served('b-next', 'b', '1')], [label('b-next')]);
    expect(next).toMatch(/tributary_model_labelled_predictions\{model="b",version="1",variant="champion",window="24h"\} 2\n/);
  });

  it('frees the label values of a retired series, and keeps the series a live one holds under other', async () => {
    // One series may name 64 label values (MONITOR_MAX_SERIES 1): model a's tuple, 62 defaulted
    // features and one feature group fill them.
    const { clock, served, send, monitor } = await retiring({ maxSeries: 1 });
    const names = Array.from({ length: 62 }, (_, i) => `f${i}`);
    await send([served('a', 'a', '1', { defaulted: names, feature_age_ms: { g1: 100 } })]);
    // Then model b is counted as other, and a's second group too (a keeps that series).
    clock.now += 3_600_000;
    const full = await send([
      served('b', 'b', '1', { feature_age_ms: {} }),
      served('a2', 'a', '1', { defaulted: [], feature_age_ms: { g2: 100 } }),
    ]);
    expect(full).toMatch(/tributary_monitor_predictions_total\{model="other",version="other",variant="other",degraded="false"\} 1/);
    expect(full).toMatch(/tributary_monitor_feature_age_seconds_count\{model="other",group="other"\} 1/);

    // b falls idle and is retired; a's series under other stays and counts on.
    clock.now += RETIRE_AFTER_MS + 1;
    await send([served('a3', 'a', '1', { defaulted: [], feature_age_ms: { g2: 100 } })]);
    await monitor.sweep();
    const kept = await send([served('a4', 'a', '1', { defaulted: [], feature_age_ms: { g2: 100 } })]);
    expect(kept).toMatch(/tributary_monitor_feature_age_seconds_count\{model="other",group="other"\} 3/);
    expect(kept).not.toMatch(/model="b"|tributary_monitor_predictions_total\{model="other"/);

    // a falls idle too: its 64 label values are free, and model c is named.
    clock.now += RETIRE_AFTER_MS + 1;
    await monitor.sweep();
    const freed = await send([served('c', 'c', '1', { defaulted: names })]);
    expect(freed).toMatch(/tributary_monitor_predictions_total\{model="c",version="1",variant="champion",degraded="false"\} 1/);
    expect(freed).toMatch(/tributary_monitor_feature_defaults_total\{model="c",version="1",feature="f61"\} 1/);
    expect(freed).toMatch(/tributary_monitor_feature_age_seconds_count\{model="c",group="user"\} 1/);
    expect(freed).not.toMatch(/model="a"/);
  });
});

describe('monitor', () => {
  it('counts predictions and labels, observes scores, and dead-letters malformed records', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.02)) },
      { key: 'b', value: JSON.stringify(prediction('b', 0.97)) },
      { key: 'c', value: '{"prediction_id": 3' },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 0, ts: Date.now() }) },
      { key: 'b', value: JSON.stringify({ request_id: 'b', label: 1, ts: new Date(Date.now() - 3_600_000).toISOString() }) },
      { key: 'x', value: JSON.stringify({ request_id: 'x', label: 2, ts: Date.now() }) },
    ]);
    await waitFor(async () => /stream="labels",outcome="dead_lettered"\} 1/.test(await registry.metrics()), {
      what: 'all records consumed',
    });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 2/);
    expect(text).toMatch(/tributary_monitor_records_total\{stream="predictions",outcome="dead_lettered"\} 1/);
    expect(text).toMatch(/tributary_monitor_records_total\{stream="labels",outcome="accepted"\} 2/);
    expect(text).toMatch(/tributary_monitor_labels_total\{label="1"\} 1/);
    expect(text).toMatch(/tributary_monitor_score_bucket\{le="0.03",model="fraud_detector",version="1",variant="champion"\} 1\n/);
    const letters = eventLog.records('dead-letter').map((r) => JSON.parse(r.value!.toString()) as DeadLetter);
    expect(letters.map((l) => [l.source.topic, l.reason])).toEqual(
      expect.arrayContaining([
        ['predictions', 'malformed'],
        ['labels', 'invalid'],
      ]),
    );
    expect(letters.find((l) => l.source.topic === 'labels')!.detail).toMatch(/label/);
  });

  it("resolves a fraud model's scores, most far below 0.01: the example model's reference deciles fall in 8 score buckets", async () => {
    const manifest = JSON.parse(await readFile(new URL('../../../models/fraud_detector/1/manifest.json', import.meta.url), 'utf8')) as {
      profile: { features: { score: { edges: number[] } } };
    };
    // The nine deciles; the threshold's edge and the upper quantiles' follow them.
    const edges = manifest.profile.features.score.edges;
    expect(edges.length).toBe(12);
    const deciles = edges.slice(0, 9);
    expect(Math.max(...deciles)).toBeLessThan(0.01);
    const { eventLog, registry } = await boot();
    await eventLog.publish(
      'predictions',
      deciles.map((score, i) => ({ key: `d${i}`, value: JSON.stringify(prediction(`d${i}`, score)) })),
    );
    await waitFor(
      async () => /tributary_monitor_records_total\{stream="predictions",outcome="accepted"\} 9/.test(await registry.metrics()),
      {
        what: 'the deciles consumed',
      },
    );
    const text = await registry.metrics();
    const cumulative = [...text.matchAll(/tributary_monitor_score_bucket\{le="[^"]+",model="fraud_detector",[^}]*\} (\d+)/g)].map((m) =>
      Number(m[1]),
    );
    // Each bucket a decile falls in raises the cumulative count once: 8 distinct counts from 1 to 9.
    const levels = new Set(cumulative.filter((count) => count > 0));
    expect(levels.size).toBe(8);
    expect(Math.max(...cumulative)).toBe(9);
  });

  it('joins labels to predictions whichever comes first, once, and reports quality, label delay and what expired', async () => {
    let now = Date.now();
    const {
      eventLog,
      registry,
      monitor: running,
    } = await boot({
      clock: () => now,
      thresholdOf: (model, version) => (model === 'fraud_detector' && version === '1' ? 0.3 : 0.5),
    });
    const label = (id: string, value: 0 | 1, delayMs: number) => ({
      key: id,
      value: JSON.stringify({ request_id: id, label: value, ts: now + delayMs }),
    });
    // Scores 0.1, 0.4, 0.9 at threshold 0.3: predicted 0, 1, 1. Label `b` arrives before its prediction.
    // Each step is consumed before the next is published (the two topics are consumed independently).
    const consumed = (pattern: RegExp, what: string) => waitFor(async () => pattern.test(await registry.metrics()), { what });
    await eventLog.publish('labels', [label('b', 0, 120_000)]);
    await consumed(/tributary_monitor_joins_total\{stream="labels",outcome="waiting"\} 1/, 'label b waiting');
    await eventLog.publish(
      'predictions',
      ['a', 'b', 'c', 'd'].map((id, i) => ({ key: id, value: JSON.stringify(prediction(id, [0.1, 0.4, 0.9, 0.5][i]!)) })),
    );
    await consumed(/tributary_monitor_joins_total\{stream="predictions",outcome="waiting"\} 3/, 'the predictions');
    await eventLog.publish('labels', [label('a', 0, 60_000), label('c', 1, 3_600_000), label('z', 1, 0)]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 2/.test(await registry.metrics()), {
      what: 'two joins on labels',
    });
    let text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="joined"\} 1/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="waiting"\} 3/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="waiting"\} 2/);
    // a: TN, b: FP, c: TP -> accuracy 2/3, precision 1/2, recall 1.
    const quality = (metric: string, window = '1h') =>
      Number(
        new RegExp(
          `tributary_model_quality\\{model="fraud_detector",version="1",variant="champion",window="${window}",metric="${metric}"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(quality('accuracy')).toBeCloseTo(2 / 3, 9);
    expect(quality('precision')).toBeCloseTo(0.5, 9);
    expect(quality('recall')).toBeCloseTo(1, 9);
    expect(quality('accuracy', '24h')).toBeCloseTo(2 / 3, 9);
    expect(quality('log_loss')).toBeCloseTo(-(Math.log(0.9) + Math.log(0.6) + Math.log(0.9)) / 3, 6);
    // The positive (0.9) above both negatives, no two in one score bin: the binned AUC is exact.
    expect(quality('roc_auc')).toBe(1);
    expect(quality('roc_auc_error_bound')).toBe(0);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 3/);
    // Of the three, c alone is labelled 1 (the alerts on ROC AUC want enough of each class).
    expect(text).toMatch(/tributary_model_labelled_positives\{model="fraud_detector",version="1",variant="champion",window="1h"\} 1\n/);
    expect(text).toMatch(/tributary_model_labelled_positives\{model="fraud_detector",version="1",variant="champion",window="24h"\} 1\n/);
    expect(text).toMatch(/tributary_monitor_label_delay_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 3/);
    expect(text).toMatch(/tributary_monitor_label_delay_seconds_bucket\{le="60",model="fraud_detector",version="1",variant="champion"\} 1/);

    // A replayed label is a duplicate: quality does not move.
    await eventLog.publish('labels', [label('a', 0, 60_000)]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="labels",outcome="duplicate"\} 1/.test(await registry.metrics()), {
      what: 'the duplicate',
    });
    text = await registry.metrics();
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 3/);

    // A later label of `c` that differs is a correction: counted apart, the first label stays joined.
    await eventLog.publish('labels', [label('c', 0, 7_200_000)]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="labels",outcome="corrected"\} 1/.test(await registry.metrics()), {
      what: 'the correction',
    });
    text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="duplicate"\} 1\n/);
    expect(text).toMatch(/tributary_model_labelled_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 3/);
    expect(quality('accuracy')).toBeCloseTo(2 / 3, 9);

    // After the window, `d` (no label) expired and `z` (no prediction) found none.
    now += DAY + 3_600_001;
    await running.sweep();
    text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_join_expired_total\{stream="predictions"\} 1/);
    expect(text).toMatch(/tributary_monitor_join_expired_total\{stream="labels"\} 1/);
    // Everything consumed: no partition has records waiting.
    expect(text).toMatch(/tributary_monitor_consumer_lag\{topic="predictions",partition="0"\} 0/);
    expect(text).toMatch(/tributary_monitor_consumer_lag\{topic="labels",partition="0"\} 0/);
    // The 1h and 24h windows have moved past those labels.
    expect(text).not.toMatch(/tributary_model_quality\{/);
  });

  it('joins one label to the champion and the shadow of a request: quality per variant, each pair once', async () => {
    const { eventLog, registry } = await boot();
    const shadowOf = (id: string, score: number) => ({
      ...prediction(id, score),
      prediction_id: `s-${id}`,
      model: { name: 'fraud_detector', version: '2' },
      variant: 'shadow',
    });
    // a: champion and shadow logged, then the label. b: the label between the two. c: label first.
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(prediction('a', 0.9)) },
      { key: 'a', value: JSON.stringify(shadowOf('a', 0.2)) },
      { key: 'b', value: JSON.stringify(prediction('b', 0.1)) },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: Date.now() }) },
      { key: 'b', value: JSON.stringify({ request_id: 'b', label: 0, ts: Date.now() }) },
      { key: 'c', value: JSON.stringify({ request_id: 'c', label: 1, ts: Date.now() }) },
    ]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="labels",outcome="joined"\} 3/.test(await registry.metrics()), {
      what: 'the joins on labels',
    });
    await eventLog.publish('predictions', [
      { key: 'b', value: JSON.stringify(shadowOf('b', 0.3)) },
      { key: 'c', value: JSON.stringify(shadowOf('c', 0.7)) },
      { key: 'c', value: JSON.stringify(prediction('c', 0.8)) },
      // A replay of a shadow already joined.
      { key: 'a', value: JSON.stringify(shadowOf('a', 0.2)) },
    ]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="predictions",outcome="joined"\} 3/.test(await registry.metrics()), {
      what: 'the joins on predictions',
    });
    const text = await registry.metrics();
    // Label a joined 2 predictions, b 1 (its shadow came later), c none on arrival: 3 pairs, 1 waiting.
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="labels",outcome="waiting"\} 1/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="waiting"\} 3/);
    expect(text).toMatch(/tributary_monitor_joins_total\{stream="predictions",outcome="duplicate"\} 1/);
    const labelled = (version: string, variant: string) =>
      Number(
        new RegExp(
          `tributary_model_labelled_predictions\\{model="fraud_detector",version="${version}",variant="${variant}",window="1h"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    const accuracy = (version: string, variant: string) =>
      Number(
        new RegExp(
          `tributary_model_quality\\{model="fraud_detector",version="${version}",variant="${variant}",window="1h",metric="accuracy"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(labelled('1', 'champion')).toBe(3);
    expect(labelled('2', 'shadow')).toBe(3);
    // Champion 0.9/1, 0.1/0, 0.8/1: all right. Shadow 0.2/1 (wrong), 0.3/0, 0.7/1: 2 of 3.
    expect(accuracy('1', 'champion')).toBeCloseTo(1, 9);
    expect(accuracy('2', 'shadow')).toBeCloseTo(2 / 3, 9);
  });

  it("reports each served feature's drift against the version's reference profile, flagging only the one that moved", async () => {
    const random = createRandom(11);
    const reference = Array.from({ length: 2_000 }, () => ({ x: random.next(), y: random.next(), score: random.next() }));
    const profile = buildProfile(
      reference,
      ['x', 'y', 'score'].map((name) => ({ name, kind: 'numeric' as const })),
    );
    const { eventLog, registry } = await boot({ profileOf: (model) => (model === 'fraud_detector' ? profile : null) });
    // Live traffic: y shifted up by half its range, x and the score as in the reference; one
    // prediction in four had no x in the store and was served its default.
    const live = Array.from({ length: 500 }, (_, i) => ({
      key: `r${i}`,
      value: JSON.stringify({
        ...prediction(`r${i}`, random.next()),
        features: { x: random.next(), y: 0.5 + random.next() / 2 },
        defaulted: i % 4 === 0 ? ['x'] : [],
      }),
    }));
    // The same version as a canary, on traffic like the reference: a series of its own.
    const canary = Array.from({ length: 200 }, (_, i) => ({
      key: `c${i}`,
      value: JSON.stringify({ ...prediction(`c${i}`, random.next()), variant: 'canary', features: { x: random.next(), y: random.next() } }),
    }));
    await eventLog.publish('predictions', [...live, ...canary]);
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 700/.test(await registry.metrics()), { what: 'the predictions' });
    const text = await registry.metrics();
    expect(text).toMatch(
      /tributary_feature_drift\{model="fraud_detector",version="1",variant="canary",feature="y",statistic="drifted"\} 0/,
    );
    const value = (feature: string, statistic: string) =>
      Number(
        new RegExp(
          `tributary_feature_drift\\{model="fraud_detector",version="1",variant="champion",feature="${feature}",statistic="${statistic}"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(value('y', 'drifted')).toBe(1);
    expect(value('x', 'drifted')).toBe(0);
    expect(value('score', 'drifted')).toBe(0);
    expect(value('y', 'psi')).toBeGreaterThan(1);
    expect(value('x', 'psi')).toBeLessThan(0.1);
    expect(value('y', 'p_value')).toBeLessThan(1e-6);
    expect(value('x', 'p_value')).toBeGreaterThan(0.01);
    expect(value('y', 'jensen_shannon')).toBeGreaterThan(value('x', 'jensen_shannon'));
    expect(value('x', 'missing_rate')).toBe(0.25);
    expect(value('y', 'missing_rate')).toBe(0);
    // Bonferroni over the two features; the score is tested on its own, as `monitor compare` does.
    expect(value('x', 'p_value')).toBeCloseTo(Math.min(1, 2 * value('x', 'p_value_unadjusted')), 12);
    expect(value('score', 'p_value')).toBe(value('score', 'p_value_unadjusted'));
    expect(value('score', 'p_value_unadjusted')).toBeLessThan(1);
  });

  it('keeps the drift and estimate windows on its own clock when a serving host stamps a prediction hours ahead', async () => {
    const random = createRandom(12);
    const reference = Array.from({ length: 2_000 }, () => ({ x: random.next(), score: random.next() }));
    const profile = buildProfile(
      reference,
      ['x', 'score'].map((name) => ({ name, kind: 'numeric' as const })),
    );
    const { eventLog, registry } = await boot({ profileOf: () => profile });
    const ahead = { ...prediction('ahead', 0.5), predicted_at: Date.now() + 2 * 3_600_000, features: { x: 0.5 } };
    const live = Array.from({ length: 300 }, (_, i) => ({
      key: `r${i}`,
      value: JSON.stringify({ ...prediction(`r${i}`, random.next()), features: { x: 0.5 + random.next() / 2 } }),
    }));
    await eventLog.publish('predictions', [{ key: 'ahead', value: JSON.stringify(ahead) }, ...live]);
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 301/.test(await registry.metrics()), { what: 'the predictions' });
    const text = await registry.metrics();
    // The records on time are in the last hour's window: x drifted, the estimate counts them.
    expect(text).toMatch(
      /tributary_feature_drift\{model="fraud_detector",version="1",variant="champion",feature="x",statistic="drifted"\} 1/,
    );
    expect(text).toMatch(
      /tributary_model_quality_estimated\{model="fraud_detector",version="1",variant="champion",window="1h",metric="accuracy"\} /,
    );
  });

  it('keeps the last hour whole when a prediction is stamped less than its allowed minute ahead', async () => {
    const minute = 60_000;
    const start = 1_800_000_000_000 - (1_800_000_000_000 % minute);
    const now = start + 59 * minute + 50_000; // 59:50 on the monitor's clock
    const { eventLog, registry } = await boot({ clock: () => now });
    // One prediction a minute from -1 (the hour back from 59:50 starts in it) to 59, then one 20 s ahead (minute 60).
    const stamped = (id: string, at: number) => ({ key: id, value: JSON.stringify({ ...prediction(id, 0.3), predicted_at: at }) });
    await eventLog.publish('predictions', [
      ...Array.from({ length: 61 }, (_, i) => stamped(`m${i - 1}`, start + (i - 1) * minute + 1000)),
      stamped('ahead', now + 20_000),
    ]);
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 62/.test(await registry.metrics()), { what: 'the predictions' });
    // The record ahead is not in the hour ending now, and took no bucket the hour still reads.
    expect(await registry.metrics()).toMatch(
      /tributary_model_estimated_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 61\n/,
    );
  });

  it('estimates quality from the scores before labels arrive, and compares false-positive rates across slices', async () => {
    const { eventLog, registry } = await boot({ sliceFields: ['country'] });
    // 40 legitimate transactions per country; 4 flagged (score 0.9) in US, 20 in FR.
    const rows = ['US', 'FR'].flatMap((country) =>
      Array.from({ length: 40 }, (_, i) => ({
        id: `${country}-${i}`,
        country,
        score: i < (country === 'US' ? 4 : 20) ? 0.9 : 0.1,
      })),
    );
    await eventLog.publish(
      'predictions',
      rows.map((r) => ({
        key: r.id,
        value: JSON.stringify({ ...prediction(r.id, r.score), request: { country: r.country, amount: 10 } }),
      })),
    );
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 80/.test(await registry.metrics()), { what: 'the predictions' });
    let text = await registry.metrics();
    // The monitor reads a score as the float32 the model gave: 0.9 is h = Math.fround(0.9), 0.1 is l.
    const [h, l] = [Math.fround(0.9), Math.fround(0.1)];
    // Every prediction is right with probability h (or 1 - l) if its score is calibrated: the estimate.
    const estimated = Number(
      /tributary_model_quality_estimated\{model="fraud_detector",version="1",variant="champion",window="1h",metric="accuracy"\} (\S+)/.exec(
        text,
      )?.[1],
    );
    expect(estimated).toBeCloseTo((24 * h + 56 * (1 - l)) / 80, 9);
    // The estimated AUC weighs each prediction p positive and 1 - p negative, in its score's bin:
    // bin of 0.1: 56 l = 5.6 positive, 56 (1 - l) = 50.4 negative; bin of 0.9: 24 h = 21.6 and 24 (1 - h) = 2.4
    // (P = 27.2, N = 52.8). Same-bin pairs 21.6 * 2.4 + 5.6 * 50.4 = 334.08, bound 334.08 / (2 P N).
    const bound = Number(
      /tributary_model_quality_estimated\{model="fraud_detector",version="1",variant="champion",window="1h",metric="roc_auc_error_bound"\} (\S+)/.exec(
        text,
      )?.[1],
    );
    const [P, N] = [24 * h + 56 * l, 24 * (1 - h) + 56 * (1 - l)];
    expect(bound).toBeCloseTo((24 * h * 24 * (1 - h) + 56 * l * 56 * (1 - l)) / (2 * P * N), 9);
    expect(bound).toBeCloseTo(334.08 / (2 * 27.2 * 52.8), 6);
    expect(text).toMatch(/tributary_model_estimated_predictions\{model="fraud_detector",version="1",variant="champion",window="1h"\} 80/);
    expect(text).not.toMatch(/tributary_slice_quality\{/);
    await eventLog.publish(
      'labels',
      rows.map((r) => ({ key: r.id, value: JSON.stringify({ request_id: r.id, label: 0, ts: Date.now() }) })),
    );
    await waitFor(async () => /stream="labels",outcome="joined"\} 80/.test(await registry.metrics()), { what: 'the joins' });
    text = await registry.metrics();
    const slice = (country: string, metric: string) =>
      Number(
        new RegExp(
          `tributary_slice_quality\\{model="fraud_detector",version="1",variant="champion",field="country",slice="${country}",metric="${metric}"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(slice('US', 'false_positive_rate')).toBeCloseTo(0.1, 9);
    expect(slice('FR', 'false_positive_rate')).toBeCloseTo(0.5, 9);
    expect(slice('US', 'labelled')).toBe(40);
    const disparity = (measure: string) =>
      Number(
        new RegExp(
          `tributary_slice_disparity\\{model="fraud_detector",version="1",variant="champion",field="country",rate="false_positive_rate",measure="${measure}"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(disparity('difference')).toBeCloseTo(0.4, 9);
    expect(disparity('ratio')).toBeCloseTo(5, 9);
    // No positives: the false-negative rate is undefined, so no disparity is claimed.
    expect(text).not.toMatch(/rate="false_negative_rate"/);
  });

  it('reports the disparity ratio as +Inf where the lowest false-positive rate is 0', async () => {
    const { eventLog, registry } = await boot({ sliceFields: ['country'] });
    // 40 legitimate transactions per country: none flagged in US (rate 0), 10 in FR (rate 0.25).
    const rows = ['US', 'FR'].flatMap((country) =>
      Array.from({ length: 40 }, (_, i) => ({ id: `inf-${country}-${i}`, country, score: country === 'FR' && i < 10 ? 0.9 : 0.1 })),
    );
    await eventLog.publish(
      'predictions',
      rows.map((r) => ({
        key: r.id,
        value: JSON.stringify({ ...prediction(r.id, r.score), request: { country: r.country, amount: 10 } }),
      })),
    );
    await eventLog.publish(
      'labels',
      rows.map((r) => ({ key: r.id, value: JSON.stringify({ request_id: r.id, label: 0, ts: Date.now() }) })),
    );
    await waitFor(async () => /stream="labels",outcome="joined"\} 80/.test(await registry.metrics()), { what: 'the joins' });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_slice_disparity\{[^}]*field="country",rate="false_positive_rate",measure="difference"\} 0.25\n/);
    expect(text).toMatch(/tributary_slice_disparity\{[^}]*field="country",rate="false_positive_rate",measure="ratio"\} \+Inf\n/);
  });

  it('reports what the service measured: predictions, degraded ones, latency, defaults per feature and feature age', async () => {
    const { eventLog, registry } = await boot();
    await eventLog.publish('predictions', [
      {
        key: 'a',
        value: JSON.stringify({
          ...prediction('a', 0.2),
          latency_ms: 3,
          degraded: false,
          defaulted: [],
          feature_age_ms: { user_transactions: 800, merchant_transactions: null },
        }),
      },
      {
        key: 'b',
        value: JSON.stringify({
          ...prediction('b', 0.3),
          latency_ms: 300,
          degraded: true,
          defaulted: ['user_transactions:count_1h', 'merchant_transactions:count_24h'],
          feature_age_ms: { user_transactions: 40_000 },
        }),
      },
    ]);
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 2/.test(await registry.metrics()), { what: 'the predictions' });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="true"\} 1/);
    expect(text).toMatch(/tributary_monitor_predictions_total\{model="fraud_detector",version="1",variant="champion",degraded="false"\} 1/);
    expect(text).toMatch(
      /tributary_monitor_prediction_latency_seconds_bucket\{le="0.004",model="fraud_detector",version="1",variant="champion"\} 1/,
    );
    expect(text).toMatch(/tributary_monitor_prediction_latency_seconds_count\{model="fraud_detector",version="1",variant="champion"\} 2/);
    expect(text).toMatch(
      /tributary_monitor_feature_defaults_total\{model="fraud_detector",version="1",feature="user_transactions:count_1h"\} 1/,
    );
    expect(text).toMatch(/tributary_monitor_feature_age_seconds_bucket\{le="1",model="fraud_detector",group="user_transactions"\} 1/);
    expect(text).toMatch(/tributary_monitor_feature_age_seconds_count\{model="fraud_detector",group="user_transactions"\} 2/);
    expect(text).not.toMatch(/group="merchant_transactions"/);
  });

  it('counts the feature ages of a shadowed request once: the shadow reads the states the answering version read', async () => {
    const { eventLog, registry } = await boot();
    const champion = { ...prediction('a', 0.2), feature_age_ms: { user: 500 } };
    const shadow = { ...champion, prediction_id: 's-a', model: { name: 'fraud_detector', version: '2' }, variant: 'shadow' };
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify(champion) },
      { key: 'a', value: JSON.stringify(shadow) },
    ]);
    await waitFor(async () => /stream="predictions",outcome="accepted"\} 2/.test(await registry.metrics()), { what: 'the predictions' });
    const text = await registry.metrics();
    expect(text).toMatch(/tributary_monitor_feature_age_seconds_count\{model="fraud_detector",group="user"\} 1\n/);
    // The shadow's own counts stay its own.
    expect(text).toMatch(/tributary_monitor_predictions_total\{model="fraud_detector",version="2",variant="shadow",degraded="false"\} 1\n/);
  });
});

describe('monitor: a monitor that lags', () => {
  it('puts a pair in the quality windows at its label time, not at the moment it is joined (a backlog spreads, it is not one bucket)', async () => {
    const now = Date.now();
    const { eventLog, registry } = await boot({ clock: () => now });
    // Consumed two hours late: a prediction and its label of then, and a pair of 5 minutes ago.
    await eventLog.publish('predictions', [
      { key: 'a', value: JSON.stringify({ ...prediction('a', 0.9), predicted_at: now - 2 * HOUR }) },
      { key: 'b', value: JSON.stringify({ ...prediction('b', 0.9), predicted_at: now - 6 * 60_000 }) },
    ]);
    await eventLog.publish('labels', [
      { key: 'a', value: JSON.stringify({ request_id: 'a', label: 1, ts: now - 2 * HOUR + 60_000 }) },
      { key: 'b', value: JSON.stringify({ request_id: 'b', label: 0, ts: now - 5 * 60_000 }) },
    ]);
    await waitFor(async () => /tributary_monitor_joins_total\{stream="\w+",outcome="joined"\} 2/.test(await registry.metrics()), {
      what: 'the joins',
    });
    const text = await registry.metrics();
    const labelled = (window: string) =>
      Number(
        new RegExp(
          `tributary_model_labelled_predictions\\{model="fraud_detector",version="1",variant="champion",window="${window}"\\} (\\S+)`,
        ).exec(text)?.[1],
      );
    expect(labelled('1h')).toBe(1);
    expect(labelled('24h')).toBe(2);
  });
});

describe('monitor: consumer lag', () => {
  const byPartition = async (registry: ReturnType<typeof createRegistry>, name: string) =>
    Object.fromEntries(
      ((await registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => [
        `${String(v.labels.topic)}:${String(v.labels.partition)}`,
        v.value,
      ]),
    );
  const lagOf = (registry: ReturnType<typeof createRegistry>) => byPartition(registry, 'tributary_monitor_consumer_lag');
  const consumedAtOf = (registry: ReturnType<typeof createRegistry>) =>
    byPartition(registry, 'tributary_monitor_consumed_timestamp_seconds');

  it('grows while batches fail because the join store does not answer', async () => {
    const joins = new MemoryJoinStore(DAY, HOUR);
    let down = false;
    const offer = joins.offer.bind(joins);
    joins.offer = async (offers) => {
      if (down) throw new Error('join store down');
      return offer(offers);
    };
    const { eventLog, registry } = await boot({ joins });
    // One key: every record on one partition.
    await eventLog.publish('predictions', [{ key: 'k', value: JSON.stringify(prediction('a', 0.9)) }]);
    await waitFor(async () => Object.values(await lagOf(registry))[0] === 0, { what: 'the first prediction consumed' });
    const [partition] = Object.keys(await lagOf(registry));
    down = true;
    await eventLog.publish(
      'predictions',
      Array.from({ length: 20 }, (_, i) => ({ key: 'k', value: JSON.stringify(prediction(`b${i}`, 0.5)) })),
    );
    await waitFor(async () => (await lagOf(registry))[partition!] === 20, {
      what: 'a lag of the 20 predictions not consumed',
      timeoutMs: 3_000,
    });
  });

  it('keeps, for a partition whose batch never ends, the time of its last batch handled, while its lag counts the records waiting', async () => {
    let now = Date.now();
    const { joins, hang } = hangingJoins();
    const { eventLog, registry } = await boot({ joins, clock: () => now });
    // One key: every record on one partition.
    await eventLog.publish('predictions', [{ key: 'k', value: JSON.stringify(prediction('a', 0.9)) }]);
    await waitFor(async () => Object.values(await lagOf(registry))[0] === 0, { what: 'the first prediction consumed' });
    const [partition] = Object.keys(await lagOf(registry));
    const handledAt = now / 1000;
    expect(await consumedAtOf(registry)).toEqual({ [partition!]: handledAt });
    // A minute later, its next batch waits on the join store for ever (the monitor goes on answering scrapes).
    now += 60_000;
    hang.stuck = true;
    await eventLog.publish(
      'predictions',
      Array.from({ length: 20 }, (_, i) => ({ key: 'k', value: JSON.stringify(prediction(`b${i}`, 0.5)) })),
    );
    try {
      await waitFor(async () => hang.release !== undefined, { what: 'the batch in flight' });
      now += 10 * 60_000;
      expect(await lagOf(registry)).toEqual({ [partition!]: 20 });
      expect(await consumedAtOf(registry)).toEqual({ [partition!]: handledAt });
    } finally {
      // Once it ends (or the test failed: the monitor can stop), the time is the monitor's clock again.
      hang.stuck = false;
      hang.release?.();
    }
    await waitFor(async () => (await lagOf(registry))[partition!] === 0, { what: 'the batch handled' });
    expect(await consumedAtOf(registry)).toEqual({ [partition!]: now / 1000 });
  });

  it('counts, between batches, the records that pile up behind a batch that never ends', async () => {
    const { joins, hang } = hangingJoins();
    // The lag counted again from the partitions' end offsets every 20 ms (15 s by default).
    const { eventLog, registry } = await boot({ joins, lagRefreshMs: 20 });
    const predictions = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ key: 'k', value: JSON.stringify(prediction(`r${from + i}`, 0.5)) }));
    // One key: every record on one partition.
    await eventLog.publish('predictions', predictions(0, 1));
    await waitFor(async () => Object.values(await lagOf(registry))[0] === 0, { what: 'the first prediction consumed' });
    const [partition] = Object.keys(await lagOf(registry));
    hang.stuck = true;
    await eventLog.publish('predictions', predictions(1, 20));
    try {
      await waitFor(async () => hang.release !== undefined, { what: 'the batch in flight' });
      // No batch is fetched while this one lasts: only the refresh sees these.
      await eventLog.publish('predictions', predictions(21, 30));
      await waitFor(async () => (await lagOf(registry))[partition!] === 50, { what: 'a lag of the 50 predictions waiting' });
    } finally {
      hang.stuck = false;
      hang.release?.();
    }
    await waitFor(async () => (await lagOf(registry))[partition!] === 0, { what: 'the predictions consumed' });
  });

  it('reaches 0 once a fetch reaches the transaction marker that ends a partition, moving the time handled and counting nothing', async () => {
    let now = Date.now();
    const joins = new MemoryJoinStore(DAY, HOUR);
    const offer = joins.offer.bind(joins);
    let offered = 0;
    joins.offer = (offers) => {
      offered++;
      return offer(offers);
    };
    const eventLog = new TransactionMarkerLog();
    // The lag counted again from the partitions' end offsets every 20 ms (15 s by default).
    const { registry } = await boot({ joins, clock: () => now, lagRefreshMs: 20 }, eventLog);
    // One key: every record on one partition.
    await eventLog.publish('predictions', [{ key: 'k', value: JSON.stringify(prediction('a', 0.9)) }]);
    await waitFor(async () => Object.values(await lagOf(registry))[0] === 0, { what: 'the prediction consumed' });
    const [partition] = Object.keys(await lagOf(registry));
    const others = async () =>
      (await registry.metrics()).split('\n').filter((line) => !/tributary_monitor_(consumer_lag|consumed_timestamp_seconds)/.test(line));
    // A minute later its transaction's commit marker comes in a fetch of its own.
    now += 60_000;
    const before = await others();
    await eventLog.endWithMarker('predictions', Number(partition!.split(':')[1]));
    // Two refreshes begun since: the first has ended.
    const reads = eventLog.endOffsetReads;
    await waitFor(() => eventLog.endOffsetReads >= reads + 2, { what: 'the lag counted again' });
    expect(await lagOf(registry)).toEqual({ [partition!]: 0 });
    expect(await consumedAtOf(registry)).toEqual({ [partition!]: now / 1000 });
    // Nothing else: no offer to the join store, no metric moved.
    expect(offered).toBe(1);
    expect(await others()).toEqual(before);
  });

  it('leaves no lag refresh running when its consumer group cannot be joined', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const eventLog = new MemoryEventLog();
      eventLog.subscribe = () => Promise.reject(new Error('group coordinator not available'));
      await expect(startMonitor(settings(eventLog, createRegistry({ defaultMetrics: false })))).rejects.toThrow(
        'group coordinator not available',
      );
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('is no longer reported for the partitions a rebalance gave to another member', async () => {
    const { eventLog, registry } = await boot();
    const records = (from: number) =>
      Array.from({ length: 40 }, (_, i) => ({ key: `r${from + i}`, value: JSON.stringify(prediction(`r${from + i}`, 0.5)) }));
    await eventLog.publish('predictions', records(0));
    await waitFor(async () => Object.keys(await lagOf(registry)).length === 4, { what: 'every predictions partition consumed' });
    // Another member joins the group: half the partitions (of both topics) go to it.
    const other = createRegistry({ defaultMetrics: false });
    const second = await startMonitor(settings(eventLog, other));
    try {
      await eventLog.publish('predictions', records(100));
      await waitFor(async () => Object.keys(await lagOf(other)).length === 2, { what: 'the other member consuming its partitions' });
      const mine = Object.keys(await lagOf(registry));
      const theirs = Object.keys(await lagOf(other));
      expect([...mine, ...theirs].sort()).toEqual(['predictions:0', 'predictions:1', 'predictions:2', 'predictions:3']);
    } finally {
      await second.stop();
    }
  });
});
