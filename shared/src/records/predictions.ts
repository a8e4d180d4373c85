/** The prediction-log record published to the `predictions` topic for every prediction. */
export interface PredictionLogRecord {
  prediction_id: string;
  request_id: string;
  model: { name: string; version: string };
  variant: 'champion' | 'canary' | 'shadow' | 'ab' | 'bandit';
  entities: Record<string, string>;
  /** Request-time fields as received. */
  request: Record<string, unknown>;
  /** The model's input vector actually used, by feature name, in the model's order. */
  features: Record<string, number>;
  /** Features that were imputed with their default (missing or stale). */
  defaulted: string[];
  /** Per feature group: age of the newest event behind its values at prediction time (ms), null when none. */
  feature_age_ms?: Record<string, number | null>;
  score: number;
  degraded: boolean;
  /** When the request was received and the prediction made (epoch ms), and the latency. */
  requested_at: number;
  predicted_at: number;
  latency_ms: number;
}
