/** A prediction-log record of the bundled model for a transaction, as the inference service logs it (tests and benches). */
import type { fraud } from '../../shared/src/index.js';

export function servedPrediction(t: fraud.Transaction, predictionId: string, features: Record<string, number>, score: number) {
  const at = t.ts as number;
  return {
    prediction_id: predictionId,
    request_id: t.event_id,
    model: { name: 'fraud_detector', version: '1' },
    variant: 'champion',
    entities: { user_id: t.user_id, merchant_id: t.merchant_id },
    request: { amount: t.amount, country: t.country, channel: t.channel },
    features,
    defaulted: [],
    score,
    degraded: false,
    requested_at: at - 1,
    predicted_at: at,
    latency_ms: 1,
  };
}
