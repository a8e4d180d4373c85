import type { Static } from 'typebox';
import { Type } from '../../typebox.js';
import { EventTimeSchema } from '../../records/validation.js';
import { WELL_FORMED, WELL_FORMED_TEXT } from '../../records/predictions.js';
import type { EventSource, FeatureGroup } from '../../features/definition.js';
import { Id } from './transactions.js';

/**
 * A label joined to its transaction's merchant (by the label join of services/features):
 * the `labels` stream only names the request, the merchant comes from the transaction.
 */
export const LabelledTransactionSchema = Type.Object(
  {
    // The label's request id (the transaction's event id); Redis keys are UTF-8, so ids must be well-formed text.
    event_id: Type.String({ minLength: 1, maxLength: 256, pattern: WELL_FORMED, description: WELL_FORMED_TEXT }),
    // The transaction's merchant, as the transactions' schema allows it.
    merchant_id: Id,
    label: Type.Union([Type.Literal(0), Type.Literal(1)]),
    ts: EventTimeSchema,
  },
  { additionalProperties: false },
);
export type LabelledTransaction = Static<typeof LabelledTransactionSchema>;

export function labelledTransactionsSource(topic = 'labelled-transactions'): EventSource & { schema: typeof LabelledTransactionSchema } {
  return {
    name: 'labelled_transactions',
    topic,
    keyField: 'merchant_id',
    eventTimeField: 'ts',
    eventIdField: 'event_id',
    schema: LabelledTransactionSchema,
  };
}

/** How often a merchant's labelled transactions turned out fraudulent: the mean label over 7 days. */
export const merchantLabels: FeatureGroup = {
  name: 'merchant_labels',
  version: 1,
  source: 'labelled_transactions',
  entity: 'merchant_id',
  aggregations: [
    { column: 'label', op: 'mean', windows: ['7d'] },
    { column: '*', op: 'count', windows: ['7d'] },
  ],
  ttl: '8d',
  defaults: { label_mean_7d: 0, count_7d: 0 },
};
