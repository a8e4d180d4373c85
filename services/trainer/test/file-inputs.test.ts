/**
 * Input files read as streams, in one pass: a prediction log, labels, events and requests
 * read from files (thousands of lines, many read chunks) give what their text read whole
 * gives, a bad line in the middle is named by its line number, and a file is never read twice
 * (a backfill reads its events once, for both its rows and its features).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraud, planFeatures, type LogRecord } from '@tributary/shared';
import { parseCsvRequests, parseNdjsonRequests, type RequestShape } from '../src/batch-predict.js';
import { trainingSetFromBackfill, trainingSetFromPredictionLog, type ModelFeatures } from '../src/build-training-set.js';
import { InputError, ndjsonInput, openInputFile, readNdjsonFile, type LogInput } from '../src/log-input.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1);
const CUTOFF = T0 + 30 * 24 * 60 * MIN;
const ROWS = 6_000;
/** The line of the prediction log that is not a record (a blank line before it counts too). */
const BAD_LINE = 3_001;

const model: ModelFeatures = { name: 'fraud_detector', version: '1', features: ['request:amount', 'user_transactions:count_1h'] };
const prediction = (i: number) => ({
  request_id: `r-é-${i}`,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  features: { 'request:amount': i % 97, 'user_transactions:count_1h': i % 5 },
  defaulted: [],
  predicted_at: T0 + i * MIN,
});
const predictionLines = Array.from({ length: ROWS }, (_, i) => JSON.stringify(prediction(i)));
predictionLines.splice(10, 0, '');
predictionLines.splice(BAD_LINE - 1, 0, '{"request_id": "cut short",');
const labelLines = Array.from({ length: ROWS }, (_, i) =>
  JSON.stringify({ request_id: `r-é-${i}`, label: i % 3 === 0 ? 1 : 0, ts: T0 + i * MIN + 1 }),
);
const transactions = Array.from({ length: 1_500 }, (_, i) => ({
  event_id: `t${i}`,
  user_id: `u${i % 40}`,
  merchant_id: `m${i % 9}`,
  amount: 10 + (i % 50),
  currency: 'EUR',
  country: 'FR',
  channel: 'web',
  ts: T0 + i * MIN,
}));
const transactionLines = transactions.map((t) => JSON.stringify(t));
const transactionLabelLines = transactions.map((t, i) =>
  JSON.stringify({ request_id: t.event_id, label: i % 4 === 0 ? 1 : 0, ts: t.ts + 1 }),
);
const text = (lines: string[]) => `${lines.join('\n')}\n`;
/** What a backfill of the example's events takes beside its inputs. */
const exampleReplay = () => {
  const example = fraud.fraudExample();
  return {
    sources: example.sources,
    groups: example.groups,
    catalog: example.catalog,
    requestFields: Object.keys(fraud.FraudRequestFieldsSchema.properties),
    allowedLatenessMs: 5 * MIN,
    readAt: CUTOFF,
  };
};

let dir: string;
const file = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-file-inputs-'));
  await writeFile(file('predictions.ndjson'), text(predictionLines));
  await writeFile(file('labels.ndjson'), text(labelLines));
  await writeFile(file('transactions.ndjson'), text(transactionLines));
  await writeFile(file('transaction-labels.ndjson'), text(transactionLabelLines));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('backfill rows of transactions stamped ahead of their records', () => {
  it('scores a transaction at the time its record was logged when its own time is later: it is not in its own features', async () => {
    const events = [0, 1].map((i): LogRecord => ({
      topic: 'transactions',
      partition: 0,
      offset: String(i),
      key: 'u1',
      // Logged at T0 + i minutes, stamped 5 seconds later by a device clock ahead.
      timestamp: T0 + i * MIN,
      headers: {},
      value: Buffer.from(JSON.stringify({ ...transactions[0]!, event_id: `a${i}`, user_id: 'u1', amount: 100, ts: T0 + i * MIN + 5_000 })),
    }));
    const labels = [0, 1].map((i) => JSON.stringify({ request_id: `a${i}`, label: 0, ts: T0 + i * MIN + 10_000 }));
    const { set } = await trainingSetFromBackfill({
      model: { name: 'fraud_detector', version: '1', features: ['user_transactions:count_10m', 'user_transactions:amount_sum_1h'] },
      policy: { cutoff: CUTOFF, unlabelled: 'negative', maturityMs: 0 },
      split: { validationFraction: 0.5 },
      events: new Map([['transactions', { name: 'transactions', kind: 'topic', records: events }]]),
      rowsSource: 'transactions',
      labels: ndjsonInput('labels.ndjson', text(labels)),
      ...exampleReplay(),
    });
    expect(set.request_ids).toEqual(['a0', 'a1']);
    // Each sees the transactions before it, not itself.
    expect(set.rows).toEqual([
      [0, 0],
      [1, 100],
    ]);
    expect(set.times).toEqual([T0, T0 + MIN]);
  });
});

describe('input files read as streams', () => {
  const fromLog = (predictions: LogInput, labels: LogInput) =>
    trainingSetFromPredictionLog({
      predictions,
      labels,
      model,
      policy: { cutoff: CUTOFF, unlabelled: 'drop', maturityMs: 0 },
      split: { validationFraction: 0.2 },
      variant: 'champion',
    });

  it('build the set their text whole builds, naming a bad line in the middle by its line number', async () => {
    const whole = await fromLog(ndjsonInput('predictions.ndjson', text(predictionLines)), ndjsonInput('labels.ndjson', text(labelLines)));
    const streamed = await fromLog(
      await readNdjsonFile(file('predictions.ndjson'), 'predictions.ndjson'),
      await readNdjsonFile(file('labels.ndjson'), 'labels.ndjson'),
    );
    expect(streamed).toEqual(whole);
    expect(streamed.set.rows).toHaveLength(ROWS);
    expect(streamed.set.request_ids.at(-1)).toBe(`r-é-${ROWS - 1}`);
    expect(streamed.rejected).toEqual([{ where: `predictions.ndjson:${BAD_LINE}`, detail: expect.stringMatching(/^invalid JSON/) }]);
    expect(streamed.labelRecords).toBe(ROWS);
  });

  it('are read once: a second pass is refused, not silently empty (a pipe cannot be read again)', async () => {
    const labels = await readNdjsonFile(file('labels.ndjson'), 'labels.ndjson');
    await fromLog(ndjsonInput('predictions.ndjson', text(predictionLines)), labels);
    await expect(fromLog(ndjsonInput('predictions.ndjson', text(predictionLines)), labels)).rejects.toThrow(
      'labels.ndjson is read once: its records must be consumed in one pass',
    );
    await expect(readNdjsonFile(file('missing.ndjson'), 'missing.ndjson')).rejects.toThrow(/^cannot read missing\.ndjson: ENOENT/);
  });

  it('in backfill mode, read the events once for both the rows and their features, as their text whole', async () => {
    const build = async (events: LogInput, labels: LogInput) =>
      trainingSetFromBackfill({
        events: new Map([['transactions', events]]),
        rowsSource: 'transactions',
        labels,
        model: { ...model, features: ['request:amount', 'user_transactions:count_1h', 'merchant_transactions:count_24h'] },
        policy: { cutoff: CUTOFF, unlabelled: 'drop', maturityMs: 0 },
        split: { validationFraction: 0.2 },
        ...exampleReplay(),
      });
    const whole = await build(
      ndjsonInput('transactions.ndjson', text(transactionLines)),
      ndjsonInput('labels.ndjson', text(transactionLabelLines)),
    );
    const streamed = await build(
      await readNdjsonFile(file('transactions.ndjson'), 'transactions.ndjson'),
      await readNdjsonFile(file('transaction-labels.ndjson'), 'labels.ndjson'),
    );
    expect(streamed).toEqual(whole);
    expect(streamed.set.stats.replay).toEqual([
      { source: 'transactions', accepted: 1_500, duplicates: 0, rejected: { late: 0, malformed: 0, invalid: 0 } },
    ]);
    // Not all defaults: the replayed counts moved.
    expect(new Set(streamed.set.rows.map((row) => row[2])).size).toBeGreaterThan(3);
  });

  it('read request files as the text whole, in NDJSON and CSV, wherever the chunks are split', async () => {
    const shape: RequestShape = {
      entityTypes: ['user_id', 'merchant_id'],
      requestFields: fraud.FraudRequestFieldsSchema,
      plan: planFeatures(fraud.FRAUD_MODEL_FEATURES, fraud.fraudExample().catalog),
      model: { name: 'fraud_detector', version: '1' },
      defaultAt: T0,
      allowAt: true,
    };
    const ids = Array.from({ length: 3_000 }, (_, i) => `q-é-${i}`);
    const ndjson = text(
      ids.map((id, i) =>
        i === 1_500
          ? '{"request_id":'
          : JSON.stringify({
              request_id: id,
              entities: { user_id: 'u1', merchant_id: 'm1' },
              features: { amount: i, country: 'FR', channel: 'web' },
            }),
      ),
    );
    const csv = text([
      'request_id,user_id,merchant_id,amount,country,channel',
      ...ids.map((id, i) => `${id},u1,m1,${i === 7 ? 'lots' : i},FR,web`),
    ]);
    const chunked = (whole: string) => Array.from({ length: Math.ceil(whole.length / 13) }, (_, i) => whole.slice(i * 13, (i + 1) * 13));
    await writeFile(file('requests.ndjson'), ndjson);
    await writeFile(file('requests.csv'), csv);

    const wholeNdjson = await parseNdjsonRequests(ndjson, 'requests.ndjson', shape);
    expect(wholeNdjson.requests).toHaveLength(2_999);
    expect(wholeNdjson.rejected.map((r) => r.where)).toEqual(['requests.ndjson:1501']);
    expect(await parseNdjsonRequests(chunked(ndjson), 'requests.ndjson', shape)).toEqual(wholeNdjson);
    expect(await parseNdjsonRequests(await openInputFile(file('requests.ndjson'), 'requests.ndjson'), 'requests.ndjson', shape)).toEqual(
      wholeNdjson,
    );

    const wholeCsv = await parseCsvRequests(csv, 'requests.csv', shape);
    expect(wholeCsv.requests).toHaveLength(2_999);
    expect(wholeCsv.rejected.map((r) => r.where)).toEqual(['requests.csv:9']);
    expect(await parseCsvRequests(chunked(csv), 'requests.csv', shape)).toEqual(wholeCsv);
    expect(await parseCsvRequests(await openInputFile(file('requests.csv'), 'requests.csv'), 'requests.csv', shape)).toEqual(wholeCsv);

    // A file that fails while it is read is an unreadable file, not a bad line.
    async function* failing(whole: string) {
      yield whole.slice(0, 1_000);
      throw new InputError('cannot read requests: EIO: i/o error, read');
    }
    await expect(parseNdjsonRequests(failing(ndjson), 'requests.ndjson', shape)).rejects.toThrow('cannot read requests: EIO');
    await expect(parseCsvRequests(failing(csv), 'requests.csv', shape)).rejects.toThrow('cannot read requests: EIO');
  });
});
