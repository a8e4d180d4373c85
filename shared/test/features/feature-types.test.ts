import { Type } from '@tributary/shared';
import { describe, expect, it } from 'vitest';
import type { CompiledFeatureGroup } from '../../src/features/definition.js';
import { compileFeatureType, encodeFeature, NO_CATEGORY, schemaKind } from '../../src/features/feature-types.js';
import {
  assembleVector,
  FeaturePlanError,
  inferFeatureTypes,
  planFeatures,
  planModelFeatures,
  requestTypeError,
} from '../../src/features/feature-vector.js';
import { applyEvent, emptyState, stateFields } from '../../src/features/tile-state.js';
import { FRAUD_MODEL_FEATURES, fraudExample } from '../../src/example/fraud/index.js';

const example = fraudExample();
const catalog = example.catalog;
const userGroup = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const NOW = Date.UTC(2024, 5, 10, 12, 0, 0);
const CHANNELS = { type: 'category' as const, vocabulary: ['web', 'app', 'pos'] };

function userState(group: CompiledFeatureGroup, country: string): Record<string, Buffer> {
  const state = emptyState();
  applyEvent(group, state, {
    time: NOW - 60_000,
    values: { user_id: 'u1', merchant_id: 'm1', amount: 10, country, channel: 'web', ts: NOW - 60_000 },
  });
  return stateFields(0, state);
}

describe('feature types', () => {
  it('encode values: numbers as they are, booleans as 1/0, a category as its index; null when the value does not fit', () => {
    const number = compileFeatureType({ type: 'number' });
    const integer = compileFeatureType({ type: 'integer' });
    const boolean = compileFeatureType({ type: 'boolean' });
    const category = compileFeatureType(CHANNELS);
    expect([encodeFeature(number, 2.5), encodeFeature(number, true), encodeFeature(number, 'x'), encodeFeature(number, NaN)]).toEqual([
      2.5,
      1,
      null,
      null,
    ]);
    expect([encodeFeature(integer, 3), encodeFeature(integer, 3.5), encodeFeature(integer, '3')]).toEqual([3, null, null]);
    expect([encodeFeature(boolean, true), encodeFeature(boolean, false), encodeFeature(boolean, 1), encodeFeature(boolean, 2)]).toEqual([
      1,
      0,
      1,
      null,
    ]);
    expect([
      encodeFeature(category, 'web'),
      encodeFeature(category, 'pos'),
      encodeFeature(category, 'atm'),
      encodeFeature(category, 1),
    ]).toEqual([0, 2, null, null]);
  });

  it('read the kind of a JSON schema: its type, literals, enums and unions', () => {
    expect(schemaKind(Type.Number())).toBe('number');
    expect(schemaKind(Type.Integer())).toBe('integer');
    expect(schemaKind(Type.Boolean())).toBe('boolean');
    expect(schemaKind(Type.Union([Type.Literal('web'), Type.Literal('app')]))).toBe('string');
    expect(schemaKind(Type.Union([Type.Integer(), Type.Number()]))).toBe('number');
    expect(schemaKind(Type.Union([Type.Integer(), Type.String()]))).toBe('unknown');
    expect(schemaKind(undefined)).toBe('unknown');
  });

  it('are inferred from the catalog for a trainer to write: counts are integers, indicators booleans, the rest numbers', () => {
    const types = inferFeatureTypes(FRAUD_MODEL_FEATURES, catalog);
    expect(types['user_transactions:count_10m']).toEqual({ type: 'integer' });
    expect(types['user_transactions:amount_mean_24h']).toEqual({ type: 'number' });
    expect(types['request:amount']).toEqual({ type: 'number' });
    expect(types['on_demand:channel_web']).toEqual({ type: 'boolean' });
    // The inferred types always plan.
    expect(planModelFeatures({ features: FRAUD_MODEL_FEATURES, feature_types: types }, catalog).types.every((t) => t !== null)).toBe(true);
    expect(() => inferFeatureTypes(['user_transactions:country_last_24h'], catalog)).toThrow(/a string; declare it a category/);
  });
});

describe('planFeatures with types', () => {
  const plan =
    (types: object, defaults: object = {}, features = Object.keys(types)) =>
    () =>
      planFeatures(features, catalog, defaults as never, types as never);

  it('refuses a type the service cannot produce, naming the feature and what the service has', () => {
    const cases: [() => unknown, string][] = [
      [
        plan({ 'user_transactions:count_1h': { type: 'boolean' } }),
        'feature "user_transactions:count_1h" is declared boolean, but the store holds the count of events, an integer',
      ],
      [
        plan({ 'user_transactions:amount_mean_24h': { type: 'integer' } }),
        'feature "user_transactions:amount_mean_24h" is declared integer, but the store holds the mean of "amount", a number',
      ],
      [
        plan({ 'user_transactions:country_last_24h': { type: 'number' } }),
        'feature "user_transactions:country_last_24h" is declared number, but the store holds the last of "country", a string',
      ],
      [
        plan({ 'request:country': { type: 'integer' } }),
        'feature "request:country" is declared integer, but request field "country" is a string',
      ],
      [plan({ 'request:amount': { type: 'category', vocabulary: ['1'] } }), 'but request field "amount" is a number'],
      [plan({ 'on_demand:log_amount': { type: 'boolean' } }), 'but on-demand feature "log_amount" computes a number'],
      [plan({ 'request:zip': { type: 'category', vocabulary: ['1'] } }), 'the request schema has no field "zip"'],
      [plan({ 'request:channel': { type: 'category' } }), 'feature "request:channel": a category needs its vocabulary'],
      [plan({ 'request:channel': { type: 'category', vocabulary: ['web', 'web'] } }), 'the vocabulary lists "web" twice'],
      [plan({ 'request:amount': { type: 'number', vocabulary: ['a'] } }), 'only a category has a vocabulary (it is declared number)'],
      [
        plan({ 'request:amount': { type: 'number' } }, {}, ['request:channel']),
        'feature_types names "request:amount", which is not in the model',
      ],
    ];
    for (const [build, message] of cases) {
      expect(build, message).toThrow(FeaturePlanError);
      expect(build, message).toThrow(message);
    }
  });

  it('refuses a default that does not fit its type, wherever it comes from', () => {
    expect(plan({ 'user_transactions:count_1h': { type: 'integer' } }, { 'user_transactions:count_1h': 2.5 })).toThrow(
      'feature "user_transactions:count_1h": its default 2.5 does not fit its type integer (expected an integer)',
    );
    expect(plan({ 'request:channel': CHANNELS }, { 'request:channel': 'atm' })).toThrow(
      'its default "atm" does not fit its type category (expected one of its vocabulary)',
    );
    expect(plan({ 'on_demand:country_changed': { type: 'boolean' } }, { 'on_demand:country_changed': 'yes' })).toThrow(
      'its default "yes" does not fit its type boolean',
    );
    // A group's default of 50 for a mean declared integer would be served as an integer: fine; 50.5 is not.
    expect(() => planFeatures(['user_transactions:amount_mean_24h'], catalog, { 'user_transactions:amount_mean_24h': 'x' })).toThrow(
      'its default "x" is not a number (it declares no type)',
    );
  });

  it('encodes request and stored values by their types; a category value outside the vocabulary takes the default', () => {
    const features = ['request:channel', 'user_transactions:country_last_24h', 'user_transactions:count_1h', 'on_demand:country_changed'];
    const typed = planModelFeatures(
      {
        features,
        feature_types: {
          'request:channel': { type: 'category', vocabulary: ['web', 'app'] },
          'user_transactions:country_last_24h': { type: 'category', vocabulary: ['US', 'FR', 'DE'] },
          'user_transactions:count_1h': { type: 'integer' },
          'on_demand:country_changed': { type: 'boolean' },
        },
        defaults: { 'request:channel': 'web' },
      },
      catalog,
    );
    const states = [userState(userGroup, 'FR')];
    const app = assembleVector(typed, states, { amount: 5, country: 'US', channel: 'app' }, NOW);
    expect(Array.from(app.vector)).toEqual([1, 1, 1, 1]);
    expect(app.defaulted).toEqual([]);
    const pos = assembleVector(typed, [userState(userGroup, 'JP')], { amount: 5, country: 'JP', channel: 'pos' }, NOW);
    // pos is not in the vocabulary: the default web (0); JP neither, and no default: NO_CATEGORY.
    expect(Array.from(pos.vector)).toEqual([0, NO_CATEGORY, 1, 0]);
    expect(pos.defaulted).toEqual(['request:channel', 'user_transactions:country_last_24h']);
    expect(pos.explanation[0]).toMatchObject({ source: 'default', value: 0 });
  });

  it('names the first request field of the wrong type (under a request schema that does not say the types)', () => {
    const loose = { ...catalog, requestFields: undefined };
    const typed = planFeatures(
      ['request:amount', 'request:channel'],
      loose,
      {},
      { 'request:amount': { type: 'integer' }, 'request:channel': CHANNELS },
    );
    expect(requestTypeError(typed, { amount: 10, channel: 'web' })).toBeNull();
    expect(requestTypeError(typed, { channel: 'web' })).toBeNull(); // missing: defaulted
    expect(requestTypeError(typed, { amount: 10.5, channel: 'web' })).toEqual({ field: 'amount', type: 'integer', expected: 'an integer' });
    expect(requestTypeError(typed, { amount: 10, channel: 3 })).toEqual({
      field: 'channel',
      type: 'category',
      expected: 'a string (a category)',
    });
  });

  it('keeps manifests without types working: every feature a number, values that are not numbers defaulted', () => {
    const legacy = planFeatures(FRAUD_MODEL_FEATURES, catalog);
    expect(legacy.types.every((t) => t === null)).toBe(true);
    expect(legacy.requestTypes).toEqual([]);
    const typed = planModelFeatures(
      { features: FRAUD_MODEL_FEATURES, feature_types: inferFeatureTypes(FRAUD_MODEL_FEATURES, catalog) },
      catalog,
    );
    const states = [userState(userGroup, 'FR'), null];
    const request = { amount: 12, country: 'FR', channel: 'web' };
    expect(Array.from(assembleVector(typed, states, request, NOW).vector)).toEqual(
      Array.from(assembleVector(legacy, states, request, NOW).vector),
    );
  });
});
