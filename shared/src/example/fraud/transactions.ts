import type { Static } from 'typebox';
import { Type } from '../../typebox.js';
import { EventTimeSchema } from '../../records/validation.js';
import type { EventSource } from '../../features/definition.js';

/** An event or entity id of the example's events. */
export const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' });

/** A card transaction on the `transactions` topic, keyed by `user_id`. */
export const TransactionSchema = Type.Object(
  {
    event_id: Id,
    user_id: Id,
    merchant_id: Id,
    amount: Type.Number({ minimum: 0, maximum: 1e9 }),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    country: Type.String({ pattern: '^[A-Z]{2}$' }),
    channel: Type.Union([Type.Literal('web'), Type.Literal('app'), Type.Literal('pos')]),
    ts: EventTimeSchema,
  },
  { additionalProperties: false },
);
export type Transaction = Static<typeof TransactionSchema>;

export function transactionsSource(topic = 'transactions'): EventSource & { schema: typeof TransactionSchema } {
  return { name: 'transactions', topic, keyField: 'user_id', eventTimeField: 'ts', eventIdField: 'event_id', schema: TransactionSchema };
}
