/**
 * The training-set builder on hand-made prediction logs and labels: delayed labels, missing
 * labels, labels that arrive after the cut-off (never used: no leakage), duplicates, labels
 * ahead of their prediction in log order, variants, other models, broken records, the time
 * split.
 */
import { describe, expect, it } from 'vitest';
import { fraud, type LogRecord, type ModelFeatureList } from '@tributary/shared';
import { trainingSetFromPredictionLog, trainingSetNdjson, trainingSetParts, type ModelFeatures } from '../src/build-training-set.js';
import { ndjsonInput, type LogInput } from '../src/log-input.js';
import { joinLabels, labelsAsOf, splitByTime, splitTime, type LabelPolicy } from '../src/training-set.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 1);
const CUTOFF = T0 + 10 * DAY;

const model: ModelFeatures = { name: 'fraud_detector', version: '2', features: ['request:amount', 'user_transactions:count_1h'] };

function prediction(request_id: string, at: number, amount: number, extra: Record<string, unknown> = {}) {
  return {
    prediction_id: `${request_id}-${at}`,
    request_id,
    model: { name: 'fraud_detector', version: '1' },
    variant: 'champion',
    entities: { user_id: 'u1' },
    request: { amount },
    // More features than the new model reads, and in another order: it takes its own, in its order.
    features: { 'user_transactions:count_1h': amount / 10, 'on_demand:log_amount': Math.log1p(amount), 'request:amount': amount },
    defaulted: [],
    score: 0.1,
    degraded: false,
    requested_at: at - 2,
    predicted_at: at,
    latency_ms: 2,
    ...extra,
  };
}
const label = (request_id: string, value: 0 | 1, ts: number | string) => ({ request_id, label: value, ts });
const lines = (records: unknown[]) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

/** The hand-made log: what each request tests is in its name. */
const predictions = ndjsonInput(
  'predictions.ndjson',
  lines([
    prediction('delayed', T0 + 1 * DAY, 10),
    prediction('missing', T0 + 1 * DAY + HOUR, 20),
    prediction('late-label', T0 + 2 * DAY, 30),
    prediction('dup', T0 + 3 * DAY, 40),
    prediction('dup', T0 + 3 * DAY + 5 * MIN, 41), // a retry of the same request: counted once, the first kept
    prediction('dup', T0 + 3 * DAY, 42, { variant: 'shadow' }), // another variant's prediction of it
    prediction('corrected', T0 + 4 * DAY, 50),
    prediction('young', CUTOFF - 2 * DAY, 60),
    prediction('after-cutoff', CUTOFF + HOUR, 70),
    prediction('other-model', T0 + 5 * DAY, 80, { model: { name: 'churn', version: '1' } }),
    '{"request_id": "broken",',
    prediction('no-features', T0 + 5 * DAY, 90, { features: { 'request:amount': 90 } }),
    prediction('label-first', T0 + 6 * DAY, 100),
  ]),
);
const labels = ndjsonInput(
  'labels.ndjson',
  lines([
    label('label-first', 1, T0 + 6 * DAY + HOUR), // ahead of its prediction in log order
    label('delayed', 1, T0 + 8 * DAY), // a week after its prediction, still before the cut-off
    label('late-label', 1, CUTOFF + 1), // known only after the cut-off: must not be used
    label('dup', 0, T0 + 3 * DAY + HOUR),
    label('corrected', 0, T0 + 4 * DAY + HOUR),
    label('corrected', 1, new Date(T0 + 5 * DAY).toISOString()), // the later label wins
    label('young', 1, CUTOFF - DAY),
    label('unknown-request', 1, T0 + DAY),
    { request_id: 'bad-label', label: 2, ts: T0 },
  ]),
);

const build = (policy: Partial<LabelPolicy>, extra: { variant?: string; predictionsInput?: LogInput; labelsInput?: LogInput } = {}) =>
  trainingSetFromPredictionLog({
    predictions: extra.predictionsInput ?? predictions,
    labels: extra.labelsInput ?? labels,
    model,
    policy: { cutoff: CUTOFF, unlabelled: 'drop', maturityMs: 0, ...policy },
    split: { validationFraction: 0.25 },
    variant: extra.variant ?? 'champion',
  });

const byId = (set: Awaited<ReturnType<typeof build>>['set']) =>
  Object.fromEntries(
    set.request_ids.map((id, i) => [id, { label: set.labels[i], source: set.label_sources[i], row: set.rows[i], time: set.times[i] }]),
  );

describe('training set from the prediction log', () => {
  it('joins delayed labels, drops the unlabelled, and never uses a label that arrived after the cut-off', async () => {
    const { set } = await build({});
    const rows = byId(set);
    expect(Object.keys(rows).sort()).toEqual(['corrected', 'delayed', 'dup', 'label-first', 'young']);
    expect(rows.delayed).toMatchObject({ label: 1, source: 'label', row: [10, 1] });
    expect(rows['late-label']).toBeUndefined();
    expect(rows.missing).toBeUndefined();
    expect(set.stats.join).toMatchObject({ labels_after_cutoff: 1, unlabelled_dropped: 2, after_cutoff: 1, labels_unmatched: 1 });
  });

  it('takes the features as served, in the model manifest order', async () => {
    const { set } = await build({});
    expect(set.features).toEqual(['request:amount', 'user_transactions:count_1h']);
    expect(byId(set)['label-first']!.row).toEqual([100, 10]);
  });

  it('takes an old enough unlabelled prediction as negative, and leaves out the young ones, labelled or not', async () => {
    const { set } = await build({ unlabelled: 'negative', maturityMs: 3 * DAY });
    const rows = byId(set);
    expect(rows.missing).toMatchObject({ label: 0, source: 'matured' });
    // Its label (a 1) arrived after the cut-off: as of the cut-off it is an unlabelled, mature prediction.
    expect(rows['late-label']).toMatchObject({ label: 0, source: 'matured' });
    expect(rows.young).toBeUndefined();
    expect(set.stats.join).toMatchObject({ immature: 1, matured_negative: 2, labels_after_cutoff: 1 });
  });

  it('moving the cut-off past a label makes it count; before its arrival it does not', async () => {
    const lateLabelTime = CUTOFF + 1;
    expect(byId((await build({ cutoff: lateLabelTime - 1 })).set)['late-label']).toBeUndefined();
    expect(byId((await build({ cutoff: lateLabelTime })).set)['late-label']).toMatchObject({ label: 1 });
    // ...and with the delayed label: at a cut-off before it arrived the row is an unlabelled one.
    const before = (await build({ cutoff: T0 + 8 * DAY - 1, unlabelled: 'negative', maturityMs: DAY })).set;
    expect(byId(before).delayed).toMatchObject({ label: 0, source: 'matured' });
  });

  it('counts a request id once: the earliest prediction of the chosen variant', async () => {
    const { set } = await build({});
    expect(byId(set).dup).toMatchObject({ row: [40, 4], time: T0 + 3 * DAY, label: 0 });
    expect(set.stats.served).toMatchObject({ duplicates: 1, other_variant: 1, other_model: 1, missing_features: 1 });
    // With every variant, the shadow prediction is one more duplicate of the same request.
    const all = (await build({}, { variant: 'all' })).set;
    expect(all.request_ids.filter((id) => id === 'dup')).toHaveLength(1);
    expect(all.stats.served).toMatchObject({ duplicates: 2, other_variant: 0 });
  });

  it('uses the last label to arrive by the cut-off when a request has several', async () => {
    expect(byId((await build({})).set).corrected).toMatchObject({ label: 1 });
    expect(byId((await build({ cutoff: T0 + 5 * DAY - 1 })).set).corrected).toMatchObject({ label: 0 });
  });

  it('sets aside records it cannot read, naming the file and line', async () => {
    const { set, rejected } = await build({});
    expect(rejected.map((r) => r.where)).toEqual(['predictions.ndjson:11', 'labels.ndjson:9']);
    expect(rejected[0]!.detail).toMatch(/invalid JSON/);
    expect(rejected[1]!.detail).toMatch(/label/);
    expect(set.stats).toMatchObject({ records_rejected: 1, labels_rejected: 1 });
  });

  it('sets aside a label whose time is after the latest time a date can hold', async () => {
    const { latest, rejected } = await labelsAsOf(
      ndjsonInput('labels.ndjson', lines([label('delayed', 1, 9e15), label('corrected', 1, 8.64e15)])),
      8.64e15,
    );
    expect([...latest.values()].map((l) => l.arrivedAt)).toEqual([8.64e15]);
    expect(rejected).toEqual([
      { where: 'labels.ndjson:1', detail: 'ts: must be an epoch-milliseconds integer (0 to 8.64e15) or an RFC 3339 date-time' },
    ]);
  });

  it('takes a label read from Kafka as arrived when it was logged, if that is later than its ts', async () => {
    const logged = (ts: number): LogRecord => ({
      topic: 'labels',
      partition: 0,
      offset: '0',
      key: 'delayed',
      value: Buffer.from(JSON.stringify(label('delayed', 1, T0 + 2 * DAY))),
      timestamp: ts,
      headers: {},
    });
    const fromTopic = (ts: number): LogInput => ({ name: 'labels', kind: 'topic', records: [logged(ts)] });
    expect(byId((await build({}, { labelsInput: fromTopic(CUTOFF + 1) })).set).delayed).toBeUndefined();
    expect(byId((await build({}, { labelsInput: fromTopic(CUTOFF) })).set).delayed).toMatchObject({ label: 1 });
  });

  it('splits by time: every training row is older than every validation row', async () => {
    const { set } = await build({ unlabelled: 'negative', maturityMs: 0 });
    expect(set.rows).toHaveLength(7);
    expect(set.split).toMatchObject({ train: 5, validation: 2 });
    const parts = trainingSetParts(set);
    expect(Math.max(...parts.train.times)).toBeLessThan(set.split.at!);
    expect(Math.min(...parts.validation.times)).toBeGreaterThanOrEqual(set.split.at!);
    expect(set.times).toEqual([...set.times].sort((a, b) => a - b));
    const ndjson = [...trainingSetNdjson(set)]
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(ndjson.map((r) => r.set)).toEqual([...Array(5).fill('train'), 'validation', 'validation']);
    expect(ndjson[0]).toEqual({
      set: 'train',
      request_id: 'delayed',
      time: T0 + DAY,
      label: 1,
      label_source: 'label',
      features: { 'request:amount': 10, 'user_transactions:count_1h': 1 },
    });
  });
});

describe("training set from the prediction log of several versions: each version's values as the model encodes them", () => {
  const catalog = fraud.fraudExample().catalog;
  const channel = { type: 'category' as const, vocabulary: ['web', 'app', 'pos'] };
  const types = {
    'request:amount': { type: 'number' as const },
    'request:channel': channel,
    'user_transactions:count_1h': { type: 'integer' as const },
  };
  const features = Object.keys(types);
  /** The model the set is built for: a card holder without transactions reads -1 (not the group's 0). */
  const v2: ModelFeatures = {
    name: 'fraud_detector',
    version: '2',
    features,
    feature_types: types,
    defaults: { 'user_transactions:count_1h': -1 },
  };
  const manifests = new Map<string, ModelFeatureList>([
    ['1', { features, feature_types: types }], // the group's default, 0
    ['2', v2],
    ['3', { features, feature_types: { ...types, 'user_transactions:count_1h': { type: 'number' } } }],
    ['5', { features, feature_types: { ...types, 'request:channel': { type: 'category', vocabulary: ['app', 'web', 'pos'] } } }],
  ]);
  const served = (request_id: string, version: string, values: number[], defaulted?: string[]) => ({
    ...prediction(request_id, T0 + DAY, 1),
    model: { name: 'fraud_detector', version },
    features: Object.fromEntries(features.map((f, i) => [f, values[i]])),
    ...(defaulted ? { defaulted } : { defaulted: undefined }),
  });
  const log = (records: unknown[], versions?: string[]) =>
    trainingSetFromPredictionLog({
      predictions: ndjsonInput('predictions.ndjson', lines(records)),
      labels: ndjsonInput('labels.ndjson', lines(records.map((r) => label((r as { request_id: string }).request_id, 1, T0 + 2 * DAY)))),
      model: v2,
      policy: { cutoff: CUTOFF, unlabelled: 'drop', maturityMs: 0 },
      split: { validationFraction: 0.2 },
      variant: 'champion',
      versions,
      servedVersions: { catalog, manifestOf: (version) => manifests.get(version) ?? null },
    });

  it("replaces another version's defaults by the model's, and leaves out versions of other types or not known", async () => {
    const { set } = await log([
      served('v1-new-holder', '1', [10, 1, 0], ['user_transactions:count_1h']),
      served('v1-known-holder', '1', [10, 1, 0], []), // a real count of 0: kept
      served('v1-no-list', '1', [10, 1, 0]), // other defaults, and no defaulted list to tell them: left out
      served('v2', '2', [20, 2, -1], ['user_transactions:count_1h']),
      served('v3', '3', [30, 0, 4], []),
      served('v4', '4', [40, 0, 4], []),
    ]);
    const rows = Object.fromEntries(set.request_ids.map((id, i) => [id, set.rows[i]]));
    expect(rows).toEqual({ 'v1-new-holder': [10, 1, -1], 'v1-known-holder': [10, 1, 0], v2: [20, 2, -1] });
    expect(set.stats.served).toMatchObject({ other_encoding: 2, unknown_version: 1, defaults_replaced: 1 });
    expect(set.stats.served!.versions_left_out).toEqual({
      '1': 'other defaults, and records without their defaulted list',
      '3': 'user_transactions:count_1h is {"type":"number"} in version 3, {"type":"integer"} in version 2',
      '4': 'its manifest is not known',
    });
  });

  it('refuses versions whose category vocabularies differ (the same code names another value), unless one is chosen', async () => {
    const records = [served('v2', '2', [20, 2, 3], []), served('v5', '5', [50, 0, 3], [])];
    await expect(log(records)).rejects.toThrow(
      'feature request:channel is a category with another vocabulary in version 5 than in version 2 (["app","web","pos"] against ["web","app","pos"])',
    );
    expect((await log(records, ['2'])).set.request_ids).toEqual(['v2']);
  });
});

describe('label join and split', () => {
  const policy: LabelPolicy = { cutoff: 100, unlabelled: 'drop', maturityMs: 0 };
  it('keeps a prediction made exactly at the cut-off and a label that arrived exactly then', async () => {
    const labels = await labelsAsOf(ndjsonInput('labels.ndjson', lines([label('a', 1, 100)])), policy.cutoff);
    const { rows } = joinLabels([{ request_id: 'a', time: 100 }], labels, policy);
    expect(rows).toEqual([{ request_id: 'a', time: 100, label: 1, label_source: 'label' }]);
  });

  it('puts rows at the split time into validation, and splits an empty set', () => {
    const rows = [10, 20, 20, 30].map((time, i) => ({ request_id: String(i), time }));
    expect(splitTime(rows, { validationFraction: 0.5 })).toBe(20);
    expect(splitByTime(rows, 20).train.map((r) => r.time)).toEqual([10]);
    expect(splitByTime(rows, 25).validation.map((r) => r.time)).toEqual([30]);
    expect(splitByTime([], 25)).toEqual({ train: [], validation: [] });
  });

  it('splits at the fraction asked, whatever the rounding of 1 minus it (1 - 0.9 is 0.09999999999999998)', () => {
    const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ request_id: String(i), time: i }));
    for (const [n, fraction, train] of [
      [10, 0.9, 1],
      [100, 0.9, 10],
      [10, 0.7, 3],
      [1000, 0.2, 800],
      [7, 0.5, 3],
    ] as const) {
      expect(splitTime(rows(n), { validationFraction: fraction }), `${n} rows, ${fraction}`).toBe(train);
    }
  });
});
