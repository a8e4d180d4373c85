/**
 * The prediction-log record as the monitor reads it: its schema (what a record must hold to be
 * counted; anything else goes to the dead-letter topic) and a quick test of the common case.
 * TypeBox's compiled check lists the entries of each record-typed field (`Object.entries`, a
 * pattern test per key): ~1-2 µs per 1.2 kB record, as much as a third of `JSON.parse`. The
 * quick test checks the same fields in plain loops and is stricter wherever that is simpler
 * (every key of `features` and `feature_age_ms` checked, names of defaulted features at most 256
 * UTF-16 units): a record it does not accept goes to the schema, which decides and names the
 * error. Tests hold it to never accepting what the schema refuses.
 *
 * Every string that becomes a metric label value is bounded (model, version, variant, and the
 * ids, as the inference service bounds them): a record with a longer one would make `/metrics`
 * as large, whatever the bound on the number of series.
 */
import {
  MODEL_NAME_MAX_LENGTH,
  MODEL_VERSION_MAX_LENGTH,
  PREDICTION_ID_MAX_LENGTH,
  PREDICTION_VARIANTS,
  recordValidator,
  REQUEST_ID_MAX_LENGTH,
  isWellFormed,
  type PredictionLogRecord,
  Type,
  WELL_FORMED,
  WELL_FORMED_TEXT,
} from '@tributary/shared';

/**
 * A text that becomes a label value of the monitor's metrics (a model, a version, a feature, a
 * feature group): well-formed (two lone surrogates would be one U+FFFD in /metrics, two series
 * of one name) and without NUL (the monitor joins label values with it to key its series).
 */
const LABEL_VALUE = '^(?:[^\\u0000\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$';
const LABEL_VALUE_TEXT = 'well-formed Unicode text (no lone surrogate) without NUL';
const labelValue = new RegExp(LABEL_VALUE, 'u');

export const PredictionRecordSchema = Type.Object({
  prediction_id: Type.String({ minLength: 1, maxLength: PREDICTION_ID_MAX_LENGTH }),
  // Well-formed: the label join keys Redis with the request id and the model's name and version.
  request_id: Type.String({ minLength: 1, maxLength: REQUEST_ID_MAX_LENGTH, pattern: WELL_FORMED, description: WELL_FORMED_TEXT }),
  model: Type.Object({
    name: Type.String({ minLength: 1, maxLength: MODEL_NAME_MAX_LENGTH, pattern: LABEL_VALUE, description: LABEL_VALUE_TEXT }),
    version: Type.String({ minLength: 1, maxLength: MODEL_VERSION_MAX_LENGTH, pattern: LABEL_VALUE, description: LABEL_VALUE_TEXT }),
  }),
  variant: Type.Union(PREDICTION_VARIANTS.map((variant) => Type.Literal(variant))),
  score: Type.Number({ minimum: 0, maximum: 1 }),
  features: Type.Optional(Type.Record(Type.String(), Type.Number())),
  request: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  degraded: Type.Optional(Type.Boolean()),
  defaulted: Type.Optional(
    Type.Array(Type.String({ maxLength: 256, pattern: LABEL_VALUE, description: LABEL_VALUE_TEXT }), { maxItems: 1000 }),
  ),
  // The names' rules as propertyNames: a Record's key schema keeps only its pattern, and lets any other key through.
  feature_age_ms: Type.Optional(
    Type.Record(Type.String(), Type.Union([Type.Number(), Type.Null()]), {
      propertyNames: { maxLength: 256, pattern: LABEL_VALUE, description: LABEL_VALUE_TEXT },
    }),
  ),
  predicted_at: Type.Number({ minimum: 0 }),
  latency_ms: Type.Number({ minimum: 0 }),
});

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isBoundedString = (value: unknown, maxLength: number): boolean =>
  typeof value === 'string' && value.length > 0 && value.length <= maxLength;
const isBoundedKey = (value: unknown, maxLength: number): boolean => isBoundedString(value, maxLength) && isWellFormed(value as string);
const isLabelValue = (value: unknown, maxLength: number): boolean =>
  typeof value === 'string' && value.length <= maxLength && labelValue.test(value);
const VARIANTS: ReadonlySet<unknown> = new Set(PREDICTION_VARIANTS);
const isFiniteAtLeastZero = (value: unknown): boolean => typeof value === 'number' && value >= 0 && value < Infinity;

/** True only for a value PredictionRecordSchema accepts (false may still be valid: ask the schema). */
export function acceptsPredictionRecord(value: unknown): boolean {
  if (!isObject(value)) return false;
  const { model, score, features, request, degraded, defaulted } = value;
  const ages = value.feature_age_ms;
  if (!isBoundedString(value.prediction_id, PREDICTION_ID_MAX_LENGTH) || !isBoundedKey(value.request_id, REQUEST_ID_MAX_LENGTH))
    return false;
  if (!VARIANTS.has(value.variant)) return false;
  if (!isObject(model) || model.name === '' || model.version === '') return false;
  if (!isLabelValue(model.name, MODEL_NAME_MAX_LENGTH) || !isLabelValue(model.version, MODEL_VERSION_MAX_LENGTH)) return false;
  if (!(typeof score === 'number' && score >= 0 && score <= 1)) return false;
  if (!isFiniteAtLeastZero(value.predicted_at) || !isFiniteAtLeastZero(value.latency_ms)) return false;
  if (features !== undefined) {
    if (!isObject(features)) return false;
    for (const name in features) if (!Number.isFinite(features[name])) return false;
  }
  if (request !== undefined && !isObject(request)) return false;
  if (degraded !== undefined && typeof degraded !== 'boolean') return false;
  if (defaulted !== undefined) {
    if (!Array.isArray(defaulted) || defaulted.length > 1000) return false;
    for (const feature of defaulted as unknown[]) if (!isLabelValue(feature, 256)) return false;
  }
  if (ages !== undefined) {
    if (!isObject(ages)) return false;
    for (const group in ages) {
      const age = ages[group];
      if (!isLabelValue(group, 256) || (age !== null && !Number.isFinite(age))) return false;
    }
  }
  return true;
}

export const predictionRecords = recordValidator<PredictionLogRecord>(PredictionRecordSchema, acceptsPredictionRecord);
