import type { OnDemandFeature } from '../../features/on-demand.js';

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/** Request-time features of the fraud example. */
export const fraudOnDemandFeatures: OnDemandFeature[] = [
  {
    name: 'log_amount',
    inputs: ['request:amount'],
    default: 0,
    compute: (inputs) => {
      const amount = num(inputs['request:amount']);
      return amount === null ? null : Math.log1p(Math.max(0, amount));
    },
  },
  {
    name: 'amount_to_user_mean_24h',
    inputs: ['request:amount', 'user_transactions:amount_mean_24h'],
    default: 1,
    compute: (inputs) => {
      const amount = num(inputs['request:amount']);
      const mean = num(inputs['user_transactions:amount_mean_24h']);
      if (amount === null || mean === null) return null;
      return amount / Math.max(mean, 1);
    },
  },
  {
    name: 'seconds_since_last_txn',
    inputs: ['user_transactions:ts_last_24h'],
    default: 86_400,
    compute: (inputs, { now }) => {
      const last = num(inputs['user_transactions:ts_last_24h']);
      return last === null ? null : Math.min(86_400, Math.max(0, (now - last) / 1000));
    },
  },
  {
    name: 'country_changed',
    inputs: ['request:country', 'user_transactions:country_last_24h'],
    default: 0,
    type: 'boolean',
    compute: (inputs) => {
      const current = inputs['request:country'];
      const previous = inputs['user_transactions:country_last_24h'];
      if (typeof current !== 'string' || typeof previous !== 'string') return null;
      return current === previous ? 0 : 1;
    },
  },
  ...(['web', 'app', 'pos'] as const).map((channel): OnDemandFeature => ({
    name: `channel_${channel}`,
    inputs: ['request:channel'],
    default: 0,
    type: 'boolean',
    compute: (inputs) => (typeof inputs['request:channel'] === 'string' ? Number(inputs['request:channel'] === channel) : null),
  })),
];
