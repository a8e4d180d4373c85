import type { FeatureGroup } from '../../features/definition.js';

/** Spending behaviour of a card holder over sliding windows. */
export const userTransactions: FeatureGroup = {
  name: 'user_transactions',
  version: 1,
  source: 'transactions',
  entity: 'user_id',
  aggregations: [
    { column: '*', op: 'count', windows: ['10m', '1h', '24h'] },
    { column: 'amount', op: 'sum', windows: ['1h', '24h'] },
    { column: 'amount', op: 'mean', windows: ['24h'] },
    { column: 'amount', op: 'max', windows: ['24h'] },
    { column: 'merchant_id', op: 'distinct_count', windows: ['1h', '24h'] },
    { column: 'ts', op: 'last', windows: ['24h'] },
    { column: 'country', op: 'last', windows: ['24h'] },
  ],
  ttl: '2d',
  defaults: { amount_mean_24h: 50, amount_max_24h: 0 },
};
