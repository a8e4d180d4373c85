/** How a prediction's version was chosen: the champion, a canary, an A/B arm, a bandit draw, or a shadow scoring alongside. */
export const PREDICTION_VARIANTS = ['champion', 'canary', 'shadow', 'ab', 'bandit'] as const;
export type PredictionVariant = (typeof PREDICTION_VARIANTS)[number];

/**
 * The longest strings of a prediction-log record that the monitor turns into metric label values
 * (characters): a model's name and version as the registry takes them, a request id as the
 * predict route takes it (and the `labels` topic), a prediction id as long. Producer and monitor
 * use the same bounds, so no prediction served is refused by the monitor.
 */
export const MODEL_NAME_MAX_LENGTH = 128;
export const MODEL_VERSION_MAX_LENGTH = 64;
export const REQUEST_ID_MAX_LENGTH = 256;
export const PREDICTION_ID_MAX_LENGTH = 256;

/**
 * Well-formed Unicode text (a JSON schema pattern, for a `u` regular expression): no lone
 * surrogate, which a JSON `\ud800` escape can make. Ids that key Redis (the label join's request
 * ids and units) must be: Redis is written UTF-8, where each lone surrogate becomes U+FFFD, so
 * `r\ud800` and `r\udc00` would be one key.
 */
export const WELL_FORMED = '^(?:[^\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$';
export const WELL_FORMED_TEXT = 'well-formed Unicode text (no lone surrogate)';
const wellFormed = new RegExp(WELL_FORMED, 'u');
export const isWellFormed = (text: string): boolean => wellFormed.test(text);

/** The prediction-log record published to the `predictions` topic for every prediction. */
export interface PredictionLogRecord {
  prediction_id: string;
  request_id: string;
  model: { name: string; version: string };
  variant: PredictionVariant;
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
