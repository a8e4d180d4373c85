import type { FeatureGroup } from '../../features/definition.js';

/** Activity of a merchant over sliding windows. */
export const merchantTransactions: FeatureGroup = {
  name: 'merchant_transactions',
  version: 1,
  source: 'transactions',
  entity: 'merchant_id',
  aggregations: [
    { column: '*', op: 'count', windows: ['1h', '24h'] },
    { column: 'amount', op: 'mean', windows: ['24h'] },
  ],
  ttl: '2d',
  defaults: { amount_mean_24h: 50 },
};
