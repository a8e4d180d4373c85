import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Compile } from '@tributary/shared';
import { binIndex, predictionRecordJson, recordValidator, servedFloats, type PredictionLogRecord } from '@tributary/shared';
import { acceptsPredictionRecord, PredictionRecordSchema, predictionRecords } from '../src/prediction-record.js';

const schema = Compile(PredictionRecordSchema);
const schemaOnly = recordValidator(PredictionRecordSchema);

/** Values valid and invalid in every way the fields can be: edge numbers, empty, long and odd strings, odd keys. */
const scalar = fc.oneof(
  fc.constantFrom(0, 1, 0.5, -0, -1, 1.5, 1e308, NaN, Infinity, -Infinity, '', 'x', '\n', 'é', '\uD800', true, false, null, undefined),
  fc.constantFrom('champion', 'canary', 'shadow', 'ab', 'bandit', 'Champion', 'champion '),
  fc.double(),
  fc.string({ maxLength: 3 }),
  // Around the bounds of model versions (64), model names (128) and ids (256), in UTF-16 units and in characters.
  fc.string({ minLength: 60, maxLength: 132 }),
  fc.string({ minLength: 60, maxLength: 132, unit: 'grapheme' }),
  fc.string({ minLength: 250, maxLength: 520 }),
);
const key = fc.oneof(
  fc.constantFrom('a', '', '\n', 'a\nb', 'toString', '__proto__'),
  fc.string({ maxLength: 4 }),
  fc.string({ minLength: 255, maxLength: 300 }),
);
const record = fc.dictionary(key, fc.oneof(scalar, fc.constant({})), { maxKeys: 4 });
const field = fc.oneof(scalar, record, fc.array(scalar, { maxLength: 3 }), fc.constant([]));
const validRecord = {
  prediction_id: 'p-1',
  request_id: 'r-1',
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion',
  score: 0.3,
  features: { 'request:amount': 12.5, 'user_transactions:count_1h': 3 },
  request: { country: 'US', amount: 12.5 },
  degraded: false,
  defaulted: ['merchant_transactions:count_1h'],
  feature_age_ms: { user_transactions: 800, merchant_transactions: null },
  predicted_at: 1_800_000_000_000,
  latency_ms: 1.2,
};
/** A valid record with some of its fields (and the model's) replaced by anything, or left out. */
const candidate = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...Object.keys(validRecord), 'extra'), fc.option(field, { nil: undefined }), { maxKeys: 4 }),
    fc.dictionary(fc.constantFrom('name', 'version'), fc.option(field, { nil: undefined }), { maxKeys: 2 }),
    fc.boolean(),
  )
  .map(([fields, modelFields, dropModel]) => {
    const value: Record<string, unknown> = { ...validRecord, ...fields };
    if (!dropModel) value.model = { ...validRecord.model, ...modelFields };
    for (const [name, v] of Object.entries(fields)) if (v === undefined && name !== 'model') delete value[name];
    return value;
  });

/** A valid record with one of its bounded strings at, just under or just over a bound (in characters; an astral one is 2 UTF-16 units). */
const nearBound = fc
  .tuple(
    fc.constantFrom('prediction_id', 'request_id', 'name', 'version', 'variant'),
    fc.constantFrom(63, 64, 65, 127, 128, 129, 255, 256, 257),
    fc.constantFrom('x', '😀'),
  )
  .map(([name, length, character]) => {
    const text = character.repeat(length);
    return name === 'name' || name === 'version'
      ? { ...validRecord, model: { ...validRecord.model, [name]: text } }
      : { ...validRecord, [name]: text };
  });

describe('acceptsPredictionRecord', () => {
  it('never accepts a value the schema refuses, so the monitor decodes every record as the schema alone does', () => {
    fc.assert(
      fc.property(fc.oneof(candidate, nearBound, field), (value) => {
        if (acceptsPredictionRecord(value)) expect(schema.Check(value)).toBe(true);
        const text = JSON.stringify(value);
        if (text !== undefined) {
          const raw = Buffer.from(text);
          expect(predictionRecords.decode(raw)).toEqual(schemaOnly.decode(raw));
        }
        expect(predictionRecords.validate(value)).toEqual(schemaOnly.validate(value));
      }),
      { numRuns: 3_000 },
    );
  });

  it('accepts the records the inference service logs (the quick path is the common one)', () => {
    expect(acceptsPredictionRecord(validRecord)).toBe(true);
    const { features, request, degraded, defaulted, feature_age_ms, ...required } = validRecord;
    expect([features, request, degraded, defaulted, feature_age_ms].length).toBe(5);
    expect(acceptsPredictionRecord(required)).toBe(true);
    expect(acceptsPredictionRecord({ ...validRecord, entities: { user_id: 'u1' }, requested_at: 1 })).toBe(true);
  });

  it('accepts the longest names and ids the inference service serves, and every variant', () => {
    const longest = {
      ...validRecord,
      prediction_id: 'p'.repeat(256),
      request_id: 'r'.repeat(256),
      model: { name: 'm'.repeat(128), version: 'v'.repeat(64) },
    };
    for (const variant of ['champion', 'canary', 'shadow', 'ab', 'bandit']) {
      expect(acceptsPredictionRecord({ ...longest, variant }), variant).toBe(true);
      expect(predictionRecords.validate({ ...longest, variant }).ok, variant).toBe(true);
    }
  });

  it('refuses, naming the field, a string that would become a label value longer than the service ever logs, or an unknown variant', () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ['a variant of 900,000 characters', { variant: 'W'.repeat(900_000) }, 'variant: '],
      ['an unknown variant', { variant: 'blue' }, 'variant: '],
      [
        'a model name of 129 characters',
        { model: { name: 'm'.repeat(129), version: '1' } },
        'model.name: must not have more than 128 characters',
      ],
      [
        'a model version of 65 characters',
        { model: { name: 'm', version: 'v'.repeat(65) } },
        'model.version: must not have more than 64 characters',
      ],
      ['a request id of 257 characters', { request_id: 'r'.repeat(257) }, 'request_id: must not have more than 256 characters'],
      ['a prediction id of 257 characters', { prediction_id: 'p'.repeat(257) }, 'prediction_id: must not have more than 256 characters'],
    ];
    for (const [what, fields, detail] of cases) {
      const value = { ...validRecord, ...fields };
      expect(acceptsPredictionRecord(value), what).toBe(false);
      const decoded = predictionRecords.decode(Buffer.from(JSON.stringify(value)));
      expect(decoded, what).toMatchObject({ ok: false, reason: 'invalid' });
      expect(decoded.ok ? '' : decoded.detail, what).toContain(detail);
    }
  });
});

describe('servedFloats', () => {
  it('reads features and score written as float32 text back as the served float32 values, in the bins they fall in', () => {
    // A float32 value equal to a reference bin edge: its 9-digit text reads as a double just below it.
    const edge = Math.fround(41.37);
    const edges = [Math.fround(10.5), edge, Math.fround(80.25)];
    const served = {
      ...validRecord,
      entities: { user_id: 'u_1' },
      requested_at: 1_800_000_000_000,
      score: Math.fround(0.3),
      features: { 'user_transactions:amount_mean_24h': edge, 'request:amount': 12.5 },
    };
    const decoded = predictionRecords.decode(Buffer.from(predictionRecordJson(served as PredictionLogRecord)));
    if (!decoded.ok) throw new Error(decoded.detail);
    expect(decoded.value.features['user_transactions:amount_mean_24h']).toBeLessThan(edge);
    expect(binIndex(edges, decoded.value.features['user_transactions:amount_mean_24h']!)).toBe(1);
    const p = servedFloats(decoded.value);
    expect(p.features).toEqual(served.features);
    expect(p.score).toBe(served.score);
    expect(binIndex(edges, p.features['user_transactions:amount_mean_24h']!)).toBe(binIndex(edges, edge));
  });
});
