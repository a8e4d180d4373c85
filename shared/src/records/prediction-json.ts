/**
 * A prediction-log record as the `predictions` topic holds it: the JSON that `JSON.stringify`
 * gives, with one difference: the model's input values (`features`) and the `score`, which are
 * single-precision floats (the model's tensors), are written with the 9 significant digits that
 * identify a float32 (C's FLT_DECIMAL_DIG), not the 17 of the double they are held in.
 * `Math.fround` of a value read back is the float32 the model saw, and the text is shorter:
 * 33.333 as a float32 is 33.3330002, not 33.33300018310547.
 *
 * Written by hand because V8 prints such doubles slowly (~400 ns each here, against ~120 for
 * `toPrecision(9)`), and a record holds one per feature (docs/inference.md, Measured).
 */
import type { PredictionLogRecord } from './predictions.js';

/** `"name":` for each feature name seen, quoted once (names come from model manifests). */
const quotedNames = new Map<string, string>();
const QUOTED_NAMES_MAX = 10_000;

function quotedName(name: string): string {
  let quoted = quotedNames.get(name);
  if (quoted === undefined) {
    quoted = `${JSON.stringify(name)}:`;
    if (quotedNames.size < QUOTED_NAMES_MAX) quotedNames.set(name, quoted);
  }
  return quoted;
}

/**
 * A number as JSON: a float32 value (a double that `Math.fround` keeps) with 9 significant
 * digits and no trailing zeros, unless it is an integer below 2^53 (written whole); any other
 * number as `JSON.stringify` writes it (`null` for NaN and the infinities).
 */
export function float32Json(value: number): string {
  if (!isFloat32Fraction(value)) return JSON.stringify(value);
  const text = value.toPrecision(9);
  const exponent = text.indexOf('e');
  const digits = exponent < 0 ? text : text.slice(0, exponent);
  let end = digits.length;
  if (digits.includes('.')) {
    while (digits.charCodeAt(end - 1) === 48 /* 0 */) end--;
    if (digits.charCodeAt(end - 1) === 46 /* . */) end--;
  }
  const trimmed = end === digits.length ? digits : digits.slice(0, end);
  return exponent < 0 ? trimmed : trimmed + text.slice(exponent);
}

/** The double whose shortest text is `float32Json`'s: a float32 value as its 9-digit decimal, any other number unchanged. */
export function float32Decimal(value: number): number {
  return isFloat32Fraction(value) ? Number(float32Json(value)) : value;
}

/** A float32 value that `float32Json` writes with 9 digits: finite, not an integer below 2^53. */
function isFloat32Fraction(value: number): boolean {
  return Math.fround(value) === value && Number.isFinite(value) && !Number.isSafeInteger(value);
}

/**
 * A prediction-log record, as read, with its features and score as the float32 values the model
 * read and gave (`Math.fround` of each number). The text `predictionRecordJson` writes reads as a
 * double within half a float32 step of it: a value equal to a bin edge of a reference profile
 * (quantiles of training rows, float32 values, such as a default many rows took) could fall in
 * the bin below, a score equal to the threshold on its other side, and a training row from the
 * log differ from the backfill's. Changes the record in place (no copy per record); anything
 * that is not a number is left as it is.
 */
export function servedFloats<T extends { score?: unknown; features?: unknown }>(record: T): T {
  if (typeof record.score === 'number') record.score = Math.fround(record.score) as T['score'];
  const features = record.features as Record<string, unknown> | null | undefined;
  if (typeof features === 'object' && features !== null) {
    for (const name in features) {
      const value = features[name];
      if (typeof value === 'number') features[name] = Math.fround(value);
    }
  }
  return record;
}

/** The record's JSON, in the order of its fields; `feature_age_ms` left out when absent. */
export function predictionRecordJson(record: PredictionLogRecord): string {
  let features = '';
  for (const name in record.features) {
    features += `${features === '' ? '' : ','}${quotedName(name)}${float32Json(record.features[name]!)}`;
  }
  return (
    `{"prediction_id":${JSON.stringify(record.prediction_id)},"request_id":${JSON.stringify(record.request_id)}` +
    `,"model":${JSON.stringify(record.model)},"variant":${JSON.stringify(record.variant)}` +
    `,"entities":${JSON.stringify(record.entities)},"request":${JSON.stringify(record.request)}` +
    `,"features":{${features}},"defaulted":${JSON.stringify(record.defaulted)}` +
    (record.feature_age_ms === undefined ? '' : `,"feature_age_ms":${JSON.stringify(record.feature_age_ms)}`) +
    `,"score":${float32Json(record.score)},"degraded":${record.degraded}` +
    `,"requested_at":${JSON.stringify(record.requested_at)},"predicted_at":${JSON.stringify(record.predicted_at)}` +
    `,"latency_ms":${JSON.stringify(record.latency_ms)}}`
  );
}
