/**
 * On-demand features: pure functions of request-time data and stored features, computed
 * at prediction time (Feast's on-demand feature views). They are declared, not hidden in
 * the service: a name, the features they read, a default and the function.
 */
export type FeatureValue = number | string | null;

export interface OnDemandContext {
  /** Request-time fields, as sent by the caller. */
  request: Record<string, unknown>;
  /** Time of the prediction, epoch ms. */
  now: number;
}

export interface OnDemandFeature {
  name: string;
  /** Feature references read: `group:feature` or `request:field`. */
  inputs: string[];
  default: number;
  /** What `compute` returns: a number (the default), an integer, or a boolean as 1/0. */
  type?: 'number' | 'integer' | 'boolean';
  compute(inputs: Record<string, FeatureValue>, context: OnDemandContext): number | null;
}
