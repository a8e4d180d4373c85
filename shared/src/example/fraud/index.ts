/**
 * The bundled example: card-transaction fraud detection. Events on `transactions`, labels
 * (chargebacks) on `labels`, two feature groups, request-time features and a logistic
 * regression model shipped in `models/fraud_detector/`.
 */
import type { TSchema } from 'typebox';
import { Type } from '../../typebox.js';
import { compileFeatureGroup, type CompiledFeatureGroup, type EventSource } from '../../features/definition.js';
import type { FeatureCatalog } from '../../features/feature-vector.js';
import { labelledTransactionsSource, merchantLabels } from './labelled-transactions.js';
import { merchantTransactions } from './merchant-transactions.js';
import { fraudOnDemandFeatures } from './on-demand.js';
import { transactionsSource } from './transactions.js';
import { userTransactions } from './user-transactions.js';

export { TransactionSchema, type Transaction } from './transactions.js';
export { fraudOnDemandFeatures } from './on-demand.js';
export { LabelledTransactionSchema, type LabelledTransaction } from './labelled-transactions.js';
export { describeDrift, parseDriftSchedule, type DriftChannel, type DriftSchedule } from './simulator-drift.js';

/** Request-time fields a fraud prediction carries. */
export const FraudRequestFieldsSchema = Type.Object(
  {
    amount: Type.Number({ minimum: 0, maximum: 1e9 }),
    country: Type.String({ pattern: '^[A-Z]{2}$' }),
    channel: Type.Union([Type.Literal('web'), Type.Literal('app'), Type.Literal('pos')]),
  },
  { additionalProperties: false },
);

/** The model's input features, in the order of its input vector. */
export const FRAUD_MODEL_FEATURES = [
  'user_transactions:count_10m',
  'user_transactions:count_1h',
  'user_transactions:count_24h',
  'user_transactions:amount_sum_1h',
  'user_transactions:amount_mean_24h',
  'user_transactions:amount_max_24h',
  'merchant_transactions:count_1h',
  'merchant_transactions:count_24h',
  'request:amount',
  'on_demand:log_amount',
  'on_demand:amount_to_user_mean_24h',
  'on_demand:seconds_since_last_txn',
  'on_demand:country_changed',
  'on_demand:channel_web',
  'on_demand:channel_app',
];

export interface FraudExample {
  sources: (EventSource & { schema: TSchema })[];
  groups: CompiledFeatureGroup[];
  catalog: FeatureCatalog;
}

export function fraudExample(
  topics: { transactions: string; labelledTransactions?: string } = { transactions: 'transactions' },
): FraudExample {
  const sources = [transactionsSource(topics.transactions), labelledTransactionsSource(topics.labelledTransactions)];
  const groups = [userTransactions, merchantTransactions, merchantLabels].map((g) => compileFeatureGroup(g, sources));
  return { sources, groups, catalog: { groups, onDemand: fraudOnDemandFeatures, sources, requestFields: FraudRequestFieldsSchema } };
}
