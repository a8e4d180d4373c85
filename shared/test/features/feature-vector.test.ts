import { describe, it, expect } from 'vitest';
import type { CompiledFeatureGroup } from '../../src/features/definition.js';
import {
  assembleVector,
  entityKeys,
  FeaturePlanError,
  planFeatures,
  type FeatureCatalog,
  type FeaturePlan,
} from '../../src/features/feature-vector.js';
import { applyEvent, emptyState, pruneState, stateFields, type EntityEvent } from '../../src/features/tile-state.js';
import { FRAUD_MODEL_FEATURES, fraudExample } from '../../src/example/fraud/index.js';
import { MemoryOnlineStore } from '../../src/online-store/memory.js';
import { float32Json } from '../../src/records/prediction-json.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const example = fraudExample();
const catalog = example.catalog;
const userGroup = example.groups.find((g) => g.definition.name === 'user_transactions')!;
const merchantGroup = example.groups.find((g) => g.definition.name === 'merchant_transactions')!;

/** Prediction time: on the hour, so every window starts exactly W before it. */
const NOW = Date.UTC(2024, 5, 10, 12, 0, 0);

function transaction(time: number, amount: number, country: string, extra: Record<string, unknown> = {}): EntityEvent {
  return { time, values: { user_id: 'u1', merchant_id: 'm1', amount, country, channel: 'web', ts: time, ...extra } };
}

/** A group's stored fields after `events`, with the newest event time as the store keeps it. */
function stateOf(group: CompiledFeatureGroup, events: EntityEvent[]): Record<string, Buffer> {
  const state = emptyState();
  for (const event of events) applyEvent(group, state, event);
  return stateFields(0, state);
}

const f32 = (values: number[]): number[] => values.map((v) => Math.fround(v));

describe('planFeatures', () => {
  it('plans the fraud model: both groups, their entity types, and each feature default', () => {
    const plan = planFeatures(FRAUD_MODEL_FEATURES, catalog);
    expect(plan.names).toEqual(FRAUD_MODEL_FEATURES);
    expect(plan.groups.map((g) => g.id)).toEqual(['user_transactions:v1', 'merchant_transactions:v1']);
    expect(plan.entities).toEqual(['user_id', 'merchant_id']);
    // group defaults (amount_mean_24h: 50, amount_max_24h: 0), 0 for features without one,
    // and each on-demand feature's own default
    expect(plan.defaults).toEqual([0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 1, 86_400, 0, 0, 0]);
  });

  it('model defaults override group and on-demand defaults', () => {
    const plan = planFeatures(['user_transactions:amount_mean_24h', 'on_demand:seconds_since_last_txn', 'request:amount'], catalog, {
      'user_transactions:amount_mean_24h': 75,
      'on_demand:seconds_since_last_txn': 3600,
      'request:amount': 10,
    });
    expect(plan.defaults).toEqual([75, 3600, 10]);
  });

  it('fetches a group read only through an on-demand feature', () => {
    const plan = planFeatures(['on_demand:country_changed'], catalog);
    expect(plan.groups.map((g) => g.id)).toEqual(['user_transactions:v1']);
    expect(plan.entities).toEqual(['user_id']);
  });

  it('fetches nothing for request-only features', () => {
    const plan = planFeatures(['request:amount', 'on_demand:log_amount', 'on_demand:channel_web'], catalog);
    expect(plan.groups).toEqual([]);
    expect(plan.entities).toEqual([]);
  });

  it('entityKeys names the stored state of each planned group, in plan order', () => {
    const plan = planFeatures(FRAUD_MODEL_FEATURES, catalog);
    expect(entityKeys(plan, { merchant_id: 'm9', user_id: 'u7' })).toEqual([
      { group: 'user_transactions:v1', entity: 'user_id', id: 'u7' },
      { group: 'merchant_transactions:v1', entity: 'merchant_id', id: 'm9' },
    ]);
  });

  const errors: [string, string[], FeatureCatalog, string][] = [
    ['unknown group', ['users:count_1h'], catalog, 'feature "users:count_1h": no feature group "users"'],
    [
      'unknown feature',
      ['user_transactions:count_2h'],
      catalog,
      'feature "user_transactions:count_2h": group "user_transactions" has no feature "count_2h"',
    ],
    ['unknown on-demand feature', ['on_demand:velocity'], catalog, 'feature "on_demand:velocity": no on-demand feature "velocity"'],
    [
      'request field the request schema does not have',
      ['request:constructor'],
      catalog,
      'feature "request:constructor": the request schema has no field "constructor" (its fields: amount, country, channel)',
    ],
    [
      'ref without a scope',
      ['count_1h'],
      catalog,
      'feature "count_1h" must be written <group>:<feature>, request:<field> or on_demand:<name>',
    ],
    ['ref with an empty scope', [':count_1h'], catalog, 'feature ":count_1h" must be written <group>:<feature>'],
    [
      'ref with an empty feature',
      ['user_transactions:'],
      catalog,
      'feature "user_transactions:": group "user_transactions" has no feature ""',
    ],
    [
      'on-demand feature reading an unknown group',
      ['on_demand:ratio'],
      {
        groups: catalog.groups,
        onDemand: [{ name: 'ratio', inputs: ['request:amount', 'cards:amount_sum_1h'], default: 0, compute: () => 0 }],
      },
      'feature "cards:amount_sum_1h": no feature group "cards"',
    ],
  ];
  for (const [what, names, against, message] of errors) {
    it(`rejects ${what}, naming the reference`, () => {
      expect(() => planFeatures(['request:amount', ...names], against)).toThrow(FeaturePlanError);
      expect(() => planFeatures(['request:amount', ...names], against)).toThrow(message);
    });
  }
});

describe('assembleVector', () => {
  const plan = planFeatures(FRAUD_MODEL_FEATURES, catalog);
  const request = { amount: 100, country: 'FR', channel: 'app' };

  // user u1: one event older than every window, then three in the last 24h
  const userEvents = [
    transaction(NOW - 30 * HOUR, 1000, 'DE'),
    transaction(NOW - 5 * HOUR, 40, 'FR'),
    transaction(NOW - 50 * MINUTE, 60, 'FR'),
    transaction(NOW - 5 * MINUTE, 20, 'US'),
  ];
  // merchant m1: two events in the last hour, one earlier today
  const merchantEvents = [
    transaction(NOW - 3 * HOUR, 10, 'FR'),
    transaction(NOW - 20 * MINUTE, 30, 'FR'),
    transaction(NOW - 2 * MINUTE, 50, 'FR'),
  ];

  /** Writes the events through the in-memory online store, as the pipeline does, and reads the plan's states back. */
  async function storedStates(entities: Record<string, string>): Promise<(Record<string, string | Buffer> | null)[]> {
    let clock = NOW - DAY;
    const store = new MemoryOnlineStore(() => clock);
    const write = async (group: CompiledFeatureGroup, id: string, events: EntityEvent[]) => {
      const state = emptyState();
      for (const event of events) applyEvent(group, state, event);
      pruneState(group, state, clock);
      const [result] = await store.write([
        {
          key: { group: group.id, entity: group.entity, id },
          partition: 0,
          offset: '1',
          set: stateFields(0, state),
          remove: [],
          ttlMs: group.ttlMs,
        },
      ]);
      expect(result).toEqual({ applied: true });
    };
    await write(userGroup, 'u1', userEvents);
    await write(merchantGroup, 'm1', merchantEvents);
    clock = NOW;
    return store.read(entityKeys(plan, entities));
  }

  it('fills the vector in the model order from stored state, request fields and on-demand features', async () => {
    const states = await storedStates({ user_id: 'u1', merchant_id: 'm1' });
    const { vector, explanation, defaulted } = assembleVector(plan, states, request, NOW);
    // Expected values worked out from the events above (windows end at NOW, start W earlier):
    const expected = [
      1, // count_10m: the event 5 min ago
      2, // count_1h: 50 and 5 min ago
      3, // count_24h: all but the one 30h ago
      60 + 20, // amount_sum_1h
      (40 + 60 + 20) / 3, // amount_mean_24h
      60, // amount_max_24h
      2, // merchant count_1h
      3, // merchant count_24h
      100, // request:amount
      Math.log1p(100), // log_amount
      100 / 40, // amount / user mean 24h
      300, // seconds since the last transaction, 5 min ago
      1, // country changed: FR now, US last
      0, // channel_web
      1, // channel_app
    ];
    expect(vector).toBeInstanceOf(Float32Array);
    expect(Array.from(vector)).toEqual(f32(expected));
    expect(defaulted).toEqual([]);
    expect(explanation.map((e) => e.name)).toEqual(FRAUD_MODEL_FEATURES);
    // As the model receives them (float32), written as the prediction log writes them (9 significant digits).
    expect(explanation.map((e) => e.value)).toEqual(expected.map((v) => expect.closeTo(v, 6)));
    expect(explanation.map((e) => e.value)).toEqual(Array.from(vector, (v) => Number(float32Json(v))));
    expect(explanation.map((e) => e.source)).toEqual([...Array<string>(8).fill('store'), 'request', ...Array<string>(6).fill('on_demand')]);
    // age of the newest event behind each stored feature: 5 min for the user, 2 min for the merchant
    expect(explanation.map((e) => e.age_ms)).toEqual([
      ...Array<number>(6).fill(5 * MINUTE),
      2 * MINUTE,
      2 * MINUTE,
      ...Array<null>(7).fill(null),
    ]);
  });

  it('uses the state of the entities the request names', async () => {
    const states = await storedStates({ user_id: 'u2', merchant_id: 'm1' });
    expect(states[0]).toBeNull();
    expect(states[1]).not.toBeNull();
  });

  it('defaults every feature of an absent group, and the on-demand features that read it', async () => {
    const states = await storedStates({ user_id: 'u2', merchant_id: 'm1' });
    const { vector, explanation, defaulted } = assembleVector(plan, states, request, NOW);
    expect(Array.from(vector)).toEqual(f32([0, 0, 0, 0, 50, 0, 2, 3, 100, Math.log1p(100), 1, 86_400, 0, 0, 1]));
    expect(defaulted).toEqual([
      'user_transactions:count_10m',
      'user_transactions:count_1h',
      'user_transactions:count_24h',
      'user_transactions:amount_sum_1h',
      'user_transactions:amount_mean_24h',
      'user_transactions:amount_max_24h',
      'on_demand:amount_to_user_mean_24h',
      'on_demand:seconds_since_last_txn',
      'on_demand:country_changed',
    ]);
    expect(explanation.map((e) => e.source)).toEqual([
      ...Array<string>(6).fill('default'),
      'store',
      'store',
      'request',
      'on_demand',
      'default',
      'default',
      'default',
      'on_demand',
      'on_demand',
    ]);
    expect(explanation.map((e) => e.age_ms)).toEqual([...Array<null>(6).fill(null), 2 * MINUTE, 2 * MINUTE, ...Array<null>(7).fill(null)]);
  });

  it('when the store is down (states null), defaults every stored and store-based feature and still computes request features', () => {
    const { vector, explanation, defaulted } = assembleVector(plan, null, request, NOW);
    expect(Array.from(vector)).toEqual(f32([0, 0, 0, 0, 50, 0, 0, 0, 100, Math.log1p(100), 1, 86_400, 0, 0, 1]));
    expect(defaulted).toEqual([...FRAUD_MODEL_FEATURES.slice(0, 8), ...FRAUD_MODEL_FEATURES.slice(10, 13)]);
    expect(explanation.filter((e) => e.source !== 'default').map((e) => [e.name, e.source])).toEqual([
      ['request:amount', 'request'],
      ['on_demand:log_amount', 'on_demand'],
      ['on_demand:channel_web', 'on_demand'],
      ['on_demand:channel_app', 'on_demand'],
    ]);
    expect(explanation.every((e) => e.age_ms === null)).toBe(true);
  });

  it('a model default replaces the group default in the vector', () => {
    const custom = planFeatures(['user_transactions:count_1h', 'user_transactions:amount_mean_24h'], catalog, {
      'user_transactions:count_1h': 4,
    });
    expect(Array.from(assembleVector(custom, null, {}, NOW).vector)).toEqual([4, 50]);
  });

  describe('stale state: the newest event older than the ttl (2d)', () => {
    const features = ['user_transactions:count_24h', 'user_transactions:amount_max_24h', 'on_demand:seconds_since_last_txn'];
    const custom = planFeatures(features, catalog, { 'user_transactions:count_24h': 7 });

    it('is defaulted, not read as empty windows', () => {
      const state = stateOf(userGroup, [transaction(NOW - 2 * DAY - 1, 500, 'FR')]);
      const { vector, explanation, defaulted } = assembleVector(custom, [state], request, NOW);
      expect(Array.from(vector)).toEqual([7, 0, 86_400]);
      expect(defaulted).toEqual(features);
      // The stored features keep their group's age, which says why they were defaulted.
      expect(explanation.map((e) => [e.source, e.age_ms])).toEqual([
        ['default', 2 * DAY + 1],
        ['default', 2 * DAY + 1],
        ['default', null],
      ]);
    });

    it('exactly ttl old is still fresh: windows read as empty (count 0 from the store)', () => {
      const state = stateOf(userGroup, [transaction(NOW - 2 * DAY, 500, 'FR')]);
      const { vector, explanation, defaulted } = assembleVector(custom, [state], request, NOW);
      expect(Array.from(vector)).toEqual([0, 0, 86_400]);
      expect(explanation[0]).toEqual({ name: features[0], value: 0, source: 'store', age_ms: 2 * DAY });
      // max and last of an empty window are missing: defaulted
      expect(defaulted).toEqual(features.slice(1));
    });
  });

  describe('on-demand features of the fraud example', () => {
    const vectorOf = (
      features: string[],
      states: (Record<string, string | Buffer> | null)[] | null,
      req: Record<string, unknown>,
      now = NOW,
    ) => assembleVector(planFeatures(features, catalog), states, req, now);

    it('log_amount is log(1 + amount), amount missing or not a number gives the default 0', () => {
      expect(vectorOf(['on_demand:log_amount'], null, { amount: 0 }).explanation[0]).toMatchObject({ value: 0, source: 'on_demand' });
      expect(vectorOf(['on_demand:log_amount'], null, { amount: Math.E - 1 }).explanation[0]!.value).toBeCloseTo(1, 12);
      for (const req of [{}, { amount: '100' }, { amount: null }]) {
        expect(vectorOf(['on_demand:log_amount'], null, req).explanation[0]).toMatchObject({ value: 0, source: 'default' });
      }
    });

    it('amount_to_user_mean_24h divides by the user mean, at least 1; default 1 without a mean', () => {
      const small = stateOf(userGroup, [transaction(NOW - HOUR, 0.25, 'FR'), transaction(NOW - HOUR, 0.75, 'FR')]);
      expect(vectorOf(['on_demand:amount_to_user_mean_24h'], [small], { amount: 30 }).explanation[0]!.value).toBe(30);
      const mean = stateOf(userGroup, [transaction(NOW - HOUR, 10, 'FR'), transaction(NOW - 2 * HOUR, 30, 'FR')]);
      expect(vectorOf(['on_demand:amount_to_user_mean_24h'], [mean], { amount: 30 }).explanation[0]!.value).toBe(1.5);
      expect(vectorOf(['on_demand:amount_to_user_mean_24h'], [null], { amount: 30 }).explanation[0]).toMatchObject({
        value: 1,
        source: 'default',
      });
    });

    it('seconds_since_last_txn counts from the newest transaction in the 24h window, clamped to [0, 86400]', () => {
      const recent = stateOf(userGroup, [transaction(NOW - 90_000, 1, 'FR'), transaction(NOW - 3 * HOUR, 1, 'FR')]);
      expect(vectorOf(['on_demand:seconds_since_last_txn'], [recent], {}).explanation[0]!.value).toBe(90);
      // read 45 min past the hour: the 24h window reaches back into the tile 24h45m ago, so a
      // transaction 24h35m old is still in it, and the result is clamped to a day
      const old = stateOf(userGroup, [transaction(NOW - DAY + 10 * MINUTE, 1, 'FR')]);
      expect(vectorOf(['on_demand:seconds_since_last_txn'], [old], {}, NOW + 45 * MINUTE).explanation[0]).toMatchObject({
        value: 86_400,
        source: 'on_demand',
      });
      // a transaction stamped after the prediction time: 0, not negative
      const future = stateOf(userGroup, [transaction(NOW + 10_000, 1, 'FR')]);
      expect(vectorOf(['on_demand:seconds_since_last_txn'], [future], {}).explanation[0]!.value).toBe(0);
    });

    it('country_changed compares with the last country in 24h; default 0 without either', () => {
      const state = stateOf(userGroup, [transaction(NOW - 2 * HOUR, 1, 'US'), transaction(NOW - HOUR, 1, 'FR')]);
      expect(vectorOf(['on_demand:country_changed'], [state], { country: 'FR' }).explanation[0]).toMatchObject({
        value: 0,
        source: 'on_demand',
      });
      expect(vectorOf(['on_demand:country_changed'], [state], { country: 'US' }).explanation[0]).toMatchObject({
        value: 1,
        source: 'on_demand',
      });
      expect(vectorOf(['on_demand:country_changed'], [state], {}).explanation[0]).toMatchObject({ value: 0, source: 'default' });
      expect(vectorOf(['on_demand:country_changed'], [null], { country: 'US' }).explanation[0]).toMatchObject({
        value: 0,
        source: 'default',
      });
    });

    it('channel one-hot: exactly one of web/app/pos is 1; no channel gives the defaults', () => {
      const channels = ['on_demand:channel_web', 'on_demand:channel_app', 'on_demand:channel_pos'];
      expect(Array.from(vectorOf(channels, null, { channel: 'web' }).vector)).toEqual([1, 0, 0]);
      expect(Array.from(vectorOf(channels, null, { channel: 'app' }).vector)).toEqual([0, 1, 0]);
      expect(Array.from(vectorOf(channels, null, { channel: 'pos' }).vector)).toEqual([0, 0, 1]);
      const none = vectorOf(channels, null, {});
      expect(Array.from(none.vector)).toEqual([0, 0, 0]);
      expect(none.defaulted).toEqual(channels);
    });
  });

  it('an on-demand function that throws serves its default and is reported, the rest of the vector as usual', () => {
    const throwing: FeatureCatalog = {
      ...catalog,
      requestFields: undefined,
      onDemand: [
        {
          name: 'amount_digits',
          inputs: ['request:amount'],
          default: -7,
          compute: (inputs) => (inputs['request:amount'] as number).toFixed(0).length,
        },
      ],
    };
    const custom = planFeatures(['request:amount', 'on_demand:amount_digits'], throwing);
    const fine = assembleVector(custom, null, { amount: 125 }, NOW);
    expect(Array.from(fine.vector)).toEqual([125, 3]);
    expect(fine.failedOnDemand).toBeUndefined();
    // A text amount: the request value is no number, so the function reads null and throws.
    const failed = assembleVector(custom, null, { amount: 'lots' }, NOW, true);
    expect(Array.from(failed.vector)).toEqual([0, -7]);
    expect(failed.defaulted).toEqual(['request:amount', 'on_demand:amount_digits']);
    expect(failed.explanation[1]).toEqual({ name: 'on_demand:amount_digits', value: -7, source: 'default', age_ms: null });
    expect(failed.failedOnDemand).toEqual([{ feature: 'amount_digits', reason: expect.stringContaining('toFixed') }]);
  });

  it('request features: numbers pass through, anything else is defaulted', () => {
    // A catalog whose request schema is open: any field may be read, its own fields only.
    const open: FeatureCatalog = { ...catalog, requestFields: undefined };
    const refs = ['request:amount', 'request:country', 'request:missing', 'request:constructor'];
    const custom: FeaturePlan = planFeatures(refs, open, { 'request:missing': -1, 'request:constructor': -2 });
    const { vector, explanation, defaulted } = assembleVector(custom, null, { amount: 12.5, country: 'FR' }, NOW);
    expect(Array.from(vector)).toEqual([12.5, 0, -1, -2]);
    expect(explanation[0]).toEqual({ name: 'request:amount', value: 12.5, source: 'request', age_ms: null });
    expect(defaulted).toEqual(['request:country', 'request:missing', 'request:constructor']);
  });
});

describe('reading only the features a model needs', () => {
  it('gives the same values as a full read for those features, and leaves the others (and the sketches) out', async () => {
    const { readFeatureValues, decodePartitionState } = await import('../../src/features/tile-state.js');
    const events = [
      transaction(NOW - 50 * MINUTE, 10, 'US', { merchant_id: 'm1' }),
      transaction(NOW - 20 * MINUTE, 30, 'US', { merchant_id: 'm2' }),
      transaction(NOW - 2 * MINUTE, 5, 'FR', { merchant_id: 'm3' }),
    ];
    const fields = stateOf(userGroup, events);
    const plan = planFeatures(FRAUD_MODEL_FEATURES, catalog);
    const needed = plan.needed.get(userGroup.id)!;
    // The model's own user features, and the inputs of its on-demand features (last country and time).
    expect([...needed].sort()).toEqual([
      'amount_max_24h',
      'amount_mean_24h',
      'amount_sum_1h',
      'count_10m',
      'count_1h',
      'count_24h',
      'country_last_24h',
      'ts_last_24h',
    ]);
    const full = readFeatureValues(userGroup, fields, NOW);
    const some = readFeatureValues(userGroup, fields, NOW, needed);
    expect(Object.keys(some.values).sort()).toEqual([...needed].sort());
    for (const name of needed) expect(some.values[name]).toEqual(full.values[name]);
    expect(some.newestEventTime).toBe(full.newestEventTime);
    expect(full.values['merchant_id_distinct_count_1h']).toBe(3);
    const field = Object.keys(fields).find((f) => f.startsWith('s'))!;
    const withSketches = decodePartitionState(fields[field]!);
    const without = decodePartitionState(fields[field]!, { skipSketches: true });
    const sketches = (state: typeof without) =>
      [...state.tiles.values()].flatMap((tile) => [...tile.values()].filter((c) => c.dc !== undefined));
    expect(sketches(withSketches).length).toBeGreaterThan(0);
    expect(sketches(without)).toHaveLength(0);
  });
});

describe('assembleVector without explanation', () => {
  it('gives the same vector and defaults, and no explanation', () => {
    const plan = planFeatures(FRAUD_MODEL_FEATURES, catalog);
    const states = [stateOf(userGroup, [transaction(NOW - 5 * MINUTE, 40, 'US')]), null];
    const request = { amount: 125.5, country: 'FR', channel: 'app' };
    const explained = assembleVector(plan, states, request, NOW);
    const bare = assembleVector(plan, states, request, NOW, false);
    expect([...bare.vector]).toEqual([...explained.vector]);
    expect(bare.defaulted).toEqual(explained.defaulted);
    expect(bare.ages).toEqual(explained.ages);
    expect(explained.explanation).toHaveLength(FRAUD_MODEL_FEATURES.length);
    expect(bare.explanation).toEqual([]);
  });
});
