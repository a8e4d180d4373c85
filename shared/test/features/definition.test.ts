import { describe, it, expect } from 'vitest';
import {
  compileFeatureGroup,
  compositeId,
  featureName,
  FeatureDefinitionError,
  type Aggregation,
  type EventSource,
  type FeatureGroup,
} from '../../src/features/definition.js';
import { fraudExample } from '../../src/example/fraud/index.js';
import { merchantTransactions } from '../../src/example/fraud/merchant-transactions.js';
import { transactionsSource } from '../../src/example/fraud/transactions.js';
import { userTransactions } from '../../src/example/fraud/user-transactions.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const sources: EventSource[] = [transactionsSource()];

/** A fresh, valid copy of the fraud example's user group, to break one field at a time. */
function validGroup(): FeatureGroup {
  return structuredClone(userTransactions);
}

function compileError(group: FeatureGroup, against: EventSource[] = sources): FeatureDefinitionError {
  try {
    compileFeatureGroup(group, against);
  } catch (error) {
    expect(error).toBeInstanceOf(FeatureDefinitionError);
    return error as FeatureDefinitionError;
  }
  throw new Error(`expected ${JSON.stringify(group)} to be rejected`);
}

describe('compileFeatureGroup: the fraud example', () => {
  it('compiles user_transactions with one feature per aggregation and window, in declaration order', () => {
    const group = compileFeatureGroup(userTransactions, sources);
    expect(group.id).toBe('user_transactions:v1');
    expect(group.ttlMs).toBe(2 * DAY);
    expect(group.maxWindowMs).toBe(DAY);
    expect(group.features.map((f) => [f.name, f.column, f.op, f.windowMs, f.tileMs, f.default])).toEqual([
      ['count_10m', '*', 'count', 10 * MINUTE, MINUTE, null],
      ['count_1h', '*', 'count', HOUR, 5 * MINUTE, null],
      ['count_24h', '*', 'count', DAY, HOUR, null],
      ['amount_sum_1h', 'amount', 'sum', HOUR, 5 * MINUTE, null],
      ['amount_sum_24h', 'amount', 'sum', DAY, HOUR, null],
      ['amount_mean_24h', 'amount', 'mean', DAY, HOUR, 50],
      ['amount_max_24h', 'amount', 'max', DAY, HOUR, 0],
      ['merchant_id_distinct_count_1h', 'merchant_id', 'distinct_count', HOUR, 5 * MINUTE, null],
      ['merchant_id_distinct_count_24h', 'merchant_id', 'distinct_count', DAY, HOUR, null],
      ['ts_last_24h', 'ts', 'last', DAY, HOUR, null],
      ['country_last_24h', 'country', 'last', DAY, HOUR, null],
    ]);
  });

  it('keeps each component once per tile size and column (mean and stddev share the moments `mv`)', () => {
    const group = compileFeatureGroup(userTransactions, sources);
    const layout = Object.fromEntries(
      [...group.tiles].map(([tileMs, columns]) => [tileMs, Object.fromEntries([...columns].map(([c, set]) => [c, [...set].sort()]))]),
    );
    expect(layout).toEqual({
      [MINUTE]: { '*': ['n'] },
      [5 * MINUTE]: { '*': ['n'], amount: ['s'], merchant_id: ['dc'] },
      [HOUR]: { '*': ['n'], amount: ['mv', 'mx', 's'], merchant_id: ['dc'], ts: ['lv'], country: ['lv'] },
    });
  });

  it('compiles merchant_transactions', () => {
    const group = compileFeatureGroup(merchantTransactions, sources);
    expect(group.id).toBe('merchant_transactions:v1');
    expect(group.definition.entity).toBe('merchant_id');
    expect(group.features.map((f) => [f.name, f.tileMs, f.default])).toEqual([
      ['count_1h', 5 * MINUTE, null],
      ['count_24h', HOUR, null],
      ['amount_mean_24h', HOUR, 50],
    ]);
  });

  it('fraudExample compiles its groups against their sources, on the topics asked for', () => {
    const example = fraudExample({ transactions: 'tx-test', labelledTransactions: 'lt-test' });
    expect(example.sources.map((s) => [s.name, s.topic, s.keyField, s.eventTimeField, s.eventIdField])).toEqual([
      ['transactions', 'tx-test', 'user_id', 'ts', 'event_id'],
      ['labelled_transactions', 'lt-test', 'merchant_id', 'ts', 'event_id'],
    ]);
    expect(example.groups.map((g) => [g.id, g.definition.source])).toEqual([
      ['user_transactions:v1', 'transactions'],
      ['merchant_transactions:v1', 'transactions'],
      ['merchant_labels:v1', 'labelled_transactions'],
    ]);
    expect(example.catalog.groups).toBe(example.groups);
  });

  it('names features <column>_<op>_<window>, and count of events count_<window>', () => {
    expect(featureName({ column: '*', op: 'count', windows: [] }, '1h')).toBe('count_1h');
    expect(featureName({ column: 'amount', op: 'count', windows: [] }, '1h')).toBe('amount_count_1h');
    expect(featureName({ column: 'amount', op: 'stddev', windows: [] }, '7d')).toBe('amount_stddev_7d');
  });

  it('accepts every operation on a column, and windows whose tiles reach back up to the ttl', () => {
    const group = validGroup();
    group.aggregations = (['count', 'sum', 'mean', 'min', 'max', 'last', 'stddev'] as const).map((op): Aggregation => ({
      column: 'amount',
      op,
      windows: ['30s', '47h'],
    }));
    const compiled = compileFeatureGroup({ ...group, defaults: {} }, sources);
    expect(compiled.features).toHaveLength(14);
    expect(compiled.maxWindowMs).toBe(47 * HOUR);
    // a 30s window gets the smallest tile (1m), a 47h window 1h tiles (a day is above 47h / 6): 48h, the ttl
    expect(compiled.features.find((f) => f.name === 'amount_min_30s')?.tileMs).toBe(MINUTE);
    expect(compiled.features.find((f) => f.name === 'amount_min_47h')?.tileMs).toBe(HOUR);
  });
});

describe('compileFeatureGroup: each invalid field is named, with the group', () => {
  const cases: { what: string; change: (g: FeatureGroup) => void; message: string | RegExp }[] = [
    {
      what: 'bad name',
      change: (g) => (g.name = 'User Transactions'),
      message: 'feature group "User Transactions": name: must match [a-z][a-z0-9_]*',
    },
    { what: 'empty name', change: (g) => (g.name = ''), message: 'feature group "": name: must match' },
    { what: 'version 0', change: (g) => (g.version = 0), message: 'feature group "user_transactions": version: must be an integer >= 1' },
    {
      what: 'version 1.5',
      change: (g) => (g.version = 1.5),
      message: 'feature group "user_transactions": version: must be an integer >= 1',
    },
    {
      what: 'unknown source',
      change: (g) => (g.source = 'clicks'),
      message: 'feature group "user_transactions": source: unknown source "clicks" (known: transactions)',
    },
    {
      what: 'bad entity',
      change: (g) => (g.entity = 'user-id'),
      message: 'feature group "user_transactions": entity: must be a field name',
    },
    {
      what: 'bad ttl',
      change: (g) => (g.ttl = 'forever'),
      message: 'feature group "user_transactions": ttl: "forever" is not a duration',
    },
    {
      what: 'zero ttl',
      change: (g) => (g.ttl = '0d'),
      message: 'feature group "user_transactions": ttl: "0d" must be a positive duration',
    },
    {
      what: 'no aggregations',
      change: (g) => (g.aggregations = []),
      message: 'feature group "user_transactions": aggregations: must list at least one aggregation',
    },
    {
      what: 'unknown op',
      change: (g) => (g.aggregations[1]!.op = 'median' as never),
      message:
        'feature group "user_transactions": aggregations[1].op: unknown operation "median" (known: count, sum, mean, min, max, last, stddev, distinct_count)',
    },
    {
      what: 'bad column',
      change: (g) => (g.aggregations[2]!.column = 'Amount'),
      message: 'feature group "user_transactions": aggregations[2].column: must be a field name, or `*` with op count',
    },
    {
      what: 'column with a colon (would break the tile field layout)',
      change: (g) => (g.aggregations[2]!.column = 'amount:usd'),
      message: 'feature group "user_transactions": aggregations[2].column: must be a field name',
    },
    {
      what: "'*' with sum",
      change: (g) => (g.aggregations[0] = { column: '*', op: 'sum', windows: ['1h'] }),
      message: 'feature group "user_transactions": aggregations[0].column: must be a field name, or `*` with op count',
    },
    {
      what: 'empty windows',
      change: (g) => (g.aggregations[3]!.windows = []),
      message: 'feature group "user_transactions": aggregations[3].windows: must list at least one window',
    },
    {
      what: 'window not a duration',
      change: (g) => (g.aggregations[3]!.windows = ['24 hours']),
      message: 'feature group "user_transactions": aggregations[3].windows: "24 hours" is not a duration (expected e.g. 30s, 10m, 1h, 7d)',
    },
    {
      what: 'fractional window',
      change: (g) => (g.aggregations[3]!.windows = ['1.5h']),
      message: 'feature group "user_transactions": aggregations[3].windows: "1.5h" is not a duration',
    },
    {
      what: 'zero window',
      change: (g) => (g.aggregations[3]!.windows = ['0m']),
      message: 'feature group "user_transactions": aggregations[3].windows: "0m" must be a positive duration',
    },
    {
      what: 'window longer than the ttl',
      change: (g) => (g.aggregations[4]!.windows = ['3d']),
      message:
        'feature group "user_transactions": aggregations[4].windows: window 3d reads whole 1h tiles, back up to 73h: the ttl 2d must be at least 73h',
    },
    {
      what: 'ttl as long as a window, shorter than the window and its tile',
      change: (g) => (g.ttl = '24h'),
      message:
        'feature group "user_transactions": aggregations[0].windows: window 24h reads whole 1h tiles, back up to 25h: the ttl 24h must be at least 25h',
    },
    {
      what: 'duplicate feature across aggregations',
      change: (g) => g.aggregations.push({ column: 'amount', op: 'sum', windows: ['1h'] }),
      message: 'feature group "user_transactions": aggregations[7]: feature "amount_sum_1h" is defined twice',
    },
    {
      what: 'duplicate window within an aggregation',
      change: (g) => (g.aggregations[0]!.windows = ['10m', '1h', '10m']),
      message: 'feature group "user_transactions": aggregations[0]: feature "count_10m" is defined twice',
    },
    {
      what: 'defaults naming no feature',
      change: (g) => (g.defaults = { amount_avg_24h: 50 }),
      message: 'feature group "user_transactions": defaults.amount_avg_24h: names no feature of this group',
    },
    {
      what: 'NaN default',
      change: (g) => (g.defaults = { amount_mean_24h: NaN }),
      message: 'feature group "user_transactions": defaults.amount_mean_24h: must be a finite number',
    },
    {
      what: 'infinite default',
      change: (g) => (g.defaults = { amount_max_24h: Infinity }),
      message: 'feature group "user_transactions": defaults.amount_max_24h: must be a finite number',
    },
    {
      what: 'no key field',
      change: (g) => (g.entity = []),
      message: 'feature group "user_transactions": entity: must name at least one key field',
    },
    {
      what: 'a composite key naming a field twice',
      change: (g) => (g.entity = ['user_id', 'merchant_id', 'user_id']),
      message: 'feature group "user_transactions": entity[2]: "user_id" is named twice',
    },
    {
      what: 'a composite key with a bad field name',
      change: (g) => (g.entity = ['user_id', 'Merchant']),
      message: 'feature group "user_transactions": entity[1]: must be a field name matching [a-z][a-z0-9_]*',
    },
    {
      what: 'non-number default',
      change: (g) => (g.defaults = { amount_max_24h: '0' as never }),
      message: 'feature group "user_transactions": defaults.amount_max_24h: must be a finite number',
    },
  ];

  for (const { what, change, message } of cases) {
    it(`${what}`, () => {
      const group = validGroup();
      change(group);
      const error = compileError(group);
      expect(error.name).toBe('FeatureDefinitionError');
      if (typeof message === 'string') expect(error.message.startsWith(message), error.message).toBe(true);
      else expect(error.message).toMatch(message);
    });
  }

  it('the unbroken copy compiles (each case above fails because of its one change)', () => {
    expect(() => compileFeatureGroup(validGroup(), sources)).not.toThrow();
  });

  it('a group whose name is not a string is reported as "?"', () => {
    const group = { ...validGroup(), name: 42 as never };
    expect(compileError(group).message).toMatch(/^feature group "\?": name: /);
  });

  it('lists every known source when the source is unknown', () => {
    const more: EventSource[] = [
      ...sources,
      { name: 'clicks', topic: 'clicks', keyField: 'user_id', eventTimeField: 'ts', eventIdField: 'id' },
    ];
    const group = { ...validGroup(), source: 'payments' };
    expect(compileError(group, more).message).toContain('unknown source "payments" (known: transactions, clicks)');
    expect(compileError(group, []).message).toContain('unknown source "payments" (known: )');
  });

  it('does not modify the definition it compiles', () => {
    const group = validGroup();
    const before = structuredClone(group);
    compileFeatureGroup(group, sources);
    expect(group).toEqual(before);
  });
});

describe('filters', () => {
  const base = {
    name: 'web_spend',
    version: 1,
    source: 'transactions',
    entity: 'user_id',
    aggregations: [{ column: 'amount', op: 'sum' as const, windows: ['1h'] }],
    ttl: '1d',
  };

  it('aggregate only the events passing every filter', () => {
    const group = compileFeatureGroup(
      {
        ...base,
        filters: [
          { field: 'channel', op: 'in', value: ['web', 'app'] },
          { field: 'amount', op: 'gte', value: 10 },
        ],
      },
      sources,
    );
    expect(group.accepts({ channel: 'web', amount: 10 })).toBe(true);
    expect(group.accepts({ channel: 'pos', amount: 50 })).toBe(false);
    expect(group.accepts({ channel: 'app', amount: 9.99 })).toBe(false);
    expect(group.accepts({ channel: 'app', amount: '50' })).toBe(false);
    expect(compileFeatureGroup(base, sources).accepts({})).toBe(true);
  });

  it.each([
    [{ field: 'Channel', op: 'eq', value: 'web' }, 'filters[0].field'],
    [{ field: 'channel', op: 'like', value: 'web' }, 'filters[0].op: unknown operation "like"'],
    [{ field: 'channel', op: 'in', value: [] }, 'filters[0].value: must be a non-empty list'],
    [{ field: 'amount', op: 'gt', value: 'ten' }, 'filters[0].value: must be a finite number for gt'],
    [{ field: 'channel', op: 'eq', value: { web: true } }, 'filters[0].value: must be a number or a string'],
  ])('reject %j naming the field', (filter, message) => {
    expect(() => compileFeatureGroup({ ...base, filters: [filter as never] }, sources)).toThrow(`feature group "web_spend": ${message}`);
  });
});

describe('composite entity keys', () => {
  const pair = compileFeatureGroup({ ...validGroup(), name: 'user_merchant', entity: ['user_id', 'merchant_id'] }, sources);

  it('name the entity type by the key fields joined by +, in the declared order', () => {
    expect(pair.entity).toBe('user_id+merchant_id');
    expect(pair.entityFields).toEqual(['user_id', 'merchant_id']);
    const single = compileFeatureGroup(validGroup(), sources);
    expect([single.entity, single.entityFields]).toEqual(['user_id', ['user_id']]);
  });

  it('give an id only when every key field is a non-empty string', () => {
    expect(pair.entityId({ user_id: 'u1', merchant_id: 'm7', amount: 3 })).toBe('u1+m7');
    expect(pair.entityId({ user_id: 'u1' })).toBeNull();
    expect(pair.entityId({ user_id: 'u1', merchant_id: '' })).toBeNull();
    expect(pair.entityId({ user_id: 'u1', merchant_id: 7 })).toBeNull();
  });

  it('escape + and backslash in the values, so that different values never share an id', () => {
    expect(compositeId(['a+b', 'c'])).toBe('a\\+b+c');
    expect(compositeId(['a', 'b+c'])).toBe('a+b\\+c');
    expect(compositeId(['a\\', '+b'])).toBe('a\\\\+\\+b');
    const values = ['a', 'b', '+', '\\', 'a+', '+b', 'a\\', '\\+', ''];
    const ids = new Map<string, string>();
    for (const x of values)
      for (const y of values) {
        const id = compositeId([x, y]);
        expect(ids.get(id), `${JSON.stringify([x, y])} and ${ids.get(id)} share ${id}`).toBeUndefined();
        ids.set(id, JSON.stringify([x, y]));
      }
  });
});
