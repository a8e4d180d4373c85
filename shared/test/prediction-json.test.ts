import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { float32Decimal, float32Json, predictionRecordJson } from '../src/records/prediction-json.js';
import type { PredictionLogRecord } from '../src/records/predictions.js';

describe('float32Json', () => {
  it('writes a float32 with the 9 significant digits that identify it, without trailing zeros', () => {
    expect(float32Json(Math.fround(33.333))).toBe('33.3330002');
    expect(float32Json(Math.fround(0.1))).toBe('0.100000001');
    expect(float32Json(125.5)).toBe('125.5');
    expect(float32Json(-0.25)).toBe('-0.25');
    expect(float32Json(2 ** -20)).toBe('9.53674316e-7');
    expect(float32Json(Math.fround(1.5e-7))).toBe('1.50000005e-7');
    expect(float32Json(Math.fround(3.4e38))).toBe('3.39999995e+38');
    expect(float32Json(Math.fround(1234567936.5))).toBe('1234567936');
    expect(float32Json(-(2 ** 100))).toBe('-1.2676506e+30');
  });

  it('writes integers, other doubles and non-finite values as JSON.stringify does', () => {
    for (const value of [0, -0, 7, -42, 2 ** 40, 1e21, 0.1, 33.333, Math.PI, 5e-324, Number.MAX_VALUE]) {
      expect(float32Json(value)).toBe(JSON.stringify(value));
    }
    for (const value of [NaN, Infinity, -Infinity]) expect(float32Json(value)).toBe('null');
  });

  it('reads back, through JSON and Math.fround, as the float32 it was; any double reads back as itself', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (value) => {
        const text = float32Json(value);
        if (!Number.isInteger(value)) expect(text.replace(/^-|\.|e.*$/g, '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
        expect(Math.fround(JSON.parse(text) as number)).toBe(value === 0 ? 0 : value);
      }),
      { numRuns: 20_000 },
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (value) => {
        expect(JSON.parse(float32Json(value))).toBe(value === 0 ? 0 : value);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('predictionRecordJson', () => {
  const record = (overrides: Partial<PredictionLogRecord> = {}): PredictionLogRecord => ({
    prediction_id: '5f0c8f8e-2c1b-4a8e-9d59-2f1e3c4b5a69',
    request_id: 'req "1"\n\u2028é',
    model: { name: 'fraud_detector', version: '3' },
    variant: 'canary',
    entities: { user_id: 'u_1', merchant_id: 'm\\2' },
    request: { amount: 125.5, country: 'US', channel: 'web', nested: { a: [1, null, 'x'] } },
    features: {
      'user_transactions:count_1h': 3,
      'user_transactions:amount_mean_24h': Math.fround(41.37),
      'on_demand:amount_to_user_mean_24h': Math.fround(125.5 / 41.37),
      'request:"odd" name': 0,
    },
    defaulted: ['user_transactions:count_1h'],
    feature_age_ms: { user_transactions: 1234, merchant_transactions: null },
    score: Math.fround(0.8123),
    degraded: false,
    requested_at: 1796135296923,
    predicted_at: 1796135296925,
    latency_ms: 1.2345678901234,
    ...overrides,
  });

  it('is the JSON of the record, fields in order, the features and score as float32 text', () => {
    const r = record();
    const text = predictionRecordJson(r);
    expect(Object.keys(JSON.parse(text) as object)).toEqual(Object.keys(r));
    expect(text).toContain('"user_transactions:amount_mean_24h":41.3699989,');
    expect(text).toContain('"score":0.812300026,');
    // Everything else reads back as JSON.stringify's text does; the floats as the same float32.
    const back = JSON.parse(text) as PredictionLogRecord;
    const reference = JSON.parse(JSON.stringify(r)) as PredictionLogRecord;
    expect({ ...back, features: {}, score: 0 }).toEqual({ ...reference, features: {}, score: 0 });
    expect(Object.keys(back.features)).toEqual(Object.keys(r.features));
    for (const [name, value] of Object.entries(r.features)) expect(Math.fround(back.features[name]!)).toBe(value);
    expect(Math.fround(back.score)).toBe(r.score);
  });

  it('is exactly JSON.stringify when no value needs float32 text, and leaves out an absent feature_age_ms', () => {
    const r = record({ features: { a: 1, b: 0.5 }, score: 0.25, feature_age_ms: undefined, degraded: true });
    expect(predictionRecordJson(r)).toBe(JSON.stringify(r));
    expect(predictionRecordJson(r)).not.toContain('feature_age_ms');
  });
});

describe('float32Decimal', () => {
  it('is the number float32Json writes, the same float32', () => {
    expect(float32Decimal(Math.fround(0.9973641633987427))).toBe(0.997364163);
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (value) => {
        const decimal = float32Decimal(value);
        expect(Math.fround(decimal)).toBe(value);
        expect(JSON.parse(float32Json(value))).toBe(decimal === 0 ? 0 : decimal);
      }),
      { numRuns: 20_000 },
    );
  });
});
