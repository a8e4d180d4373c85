/** A valid transaction of user u1 at merchant m1, as the transactions topic holds it (JSON text); `ts` and more overridable. */
export function transactionJson(eventId: string, ts: number, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    event_id: eventId,
    user_id: 'u1',
    merchant_id: 'm1',
    amount: 10,
    currency: 'USD',
    country: 'US',
    channel: 'web',
    ts,
    ...fields,
  });
}
