/**
 * Input of `monitor compare`: NDJSON files of prediction-log records (shared's
 * PredictionLogRecord: `features` name -> number, `request` fields, `score`), optionally
 * joined with a label, or plain flat rows. Each record becomes one flat row; errors name
 * the file and the line. A record of another model, version or variant than the filter's is
 * left out (by default the shadows': a dump of the predictions topic holds each shadow's
 * record of a request beside the answer's).
 */
import { byName, PREDICTION_VARIANTS, servedFloats, textLines, type Row, type TextChunks } from '@tributary/shared';

export class CompareInputError extends Error {
  override readonly name = 'CompareInputError';
}

export interface Sample {
  file: string;
  rows: Row[];
  /** Feature names found in the records: the `features` map of prediction logs, or every other field of flat rows. */
  featureNames: string[];
  /** Scores per row (undefined where the record has none) and labels (0/1, undefined where absent). */
  scores: Array<number | undefined>;
  labels: Array<0 | 1 | undefined>;
  /** Slice per row (the value of the slice field as a string), when one is asked for. */
  slices: Array<string | undefined>;
  /** Per row, the features a prediction-log record says were served by default (their values stand in for missing ones). */
  defaulted: Array<string[] | undefined>;
  /** Records left out by the filter (another model, version or variant). */
  excluded: number;
}

/** The variants whose predictions answer clients (a shadow's are only logged): each request once. */
export const ANSWERING_VARIANTS = PREDICTION_VARIANTS.filter((variant) => variant !== 'shadow');

/**
 * Which records are compared: those of the model `model` (its `model.name`), of the version
 * `version` (`model.version`) and of one of `variants` (`variant`). A record without one of
 * these fields (a flat row) is not filtered on it.
 */
export interface RecordFilter {
  model?: string;
  version?: string;
  variants: readonly string[];
}

/** Takes every record: no model, version or variant is left out. */
const EVERY_RECORD: RecordFilter = { variants: PREDICTION_VARIANTS };

function kept(record: Record<string, unknown>, filter: RecordFilter): boolean {
  const model = isObject(record.model) ? record.model : {};
  const differs = (value: unknown, wanted: string | undefined) => wanted !== undefined && typeof value === 'string' && value !== wanted;
  if (differs(model.name, filter.model) || differs(model.version, filter.version)) return false;
  return typeof record.variant !== 'string' || filter.variants.includes(record.variant);
}

export interface SampleFields {
  scoreField: string;
  labelField: string;
  sliceField?: string;
}

/** Parses one NDJSON file, whole or read in chunks (one line in memory at a time); blank lines are skipped. */
export async function parseSample(text: TextChunks, file: string, fields: SampleFields, filter = EVERY_RECORD): Promise<Sample> {
  const sample: Sample = { file, rows: [], featureNames: [], scores: [], labels: [], slices: [], defaulted: [], excluded: 0 };
  const names = new Set<string>();
  for await (const { number, text: line } of textLines(text)) {
    const where = `${file}:${number}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new CompareInputError(`${where}: not valid JSON (${(error as Error).message})`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      throw new CompareInputError(`${where}: expected a JSON object, got ${Array.isArray(record) ? 'an array' : typeof record}`);
    }
    if (!kept(record as Record<string, unknown>, filter)) {
      sample.excluded++;
      continue;
    }
    const { row, features, written } = flattenRecord(record as Record<string, unknown>, fields, where);
    for (const name of features) names.add(name);
    sample.rows.push(row);
    sample.scores.push(scoreOf(row[fields.scoreField], fields.scoreField, where, written[fields.scoreField]));
    sample.labels.push(labelOf(row[fields.labelField], fields.labelField, where));
    const slice = fields.sliceField === undefined ? undefined : row[fields.sliceField];
    sample.slices.push(slice === undefined || slice === null ? undefined : String(slice));
    sample.defaulted.push(defaultedOf((record as Record<string, unknown>).defaulted, where));
  }
  if (sample.rows.length === 0) {
    const all = sample.excluded === 0 ? '' : ` of the model, version and variants asked for (${sample.excluded} others left out)`;
    throw new CompareInputError(`${file}: no records${all}`);
  }
  sample.featureNames = [...names];
  return sample;
}

/**
 * One flat row per record. A prediction-log record (with a `features` object) gives its
 * request fields, then its features (which win on a name clash), then its other top-level
 * scalar fields (score, label...); its features and its `score` are read as the float32 values
 * the model read and gave (`Math.fround`, as the monitor reads them). A flat record is taken as it is.
 * `written`: the score, label and slice fields as the record writes them (before that rounding), for messages.
 */
export function flattenRecord(
  record: Record<string, unknown>,
  fields: SampleFields,
  where: string,
): { row: Row; features: string[]; written: Row } {
  const reserved = new Set([fields.scoreField, fields.labelField, ...(fields.sliceField === undefined ? [] : [fields.sliceField])]);
  if (isObject(record.features)) {
    const written = byName<unknown>();
    for (const name of reserved) written[name] = asWritten(record as Record<string, unknown> & { features: Record<string, unknown> }, name);
    const row = byName<unknown>();
    if (isObject(record.request)) Object.assign(row, scalars(record.request));
    // The float32 values the model read and gave (the inference service writes them with 9 digits), as the monitor reads them.
    const { features } = servedFloats(record as { score?: unknown; features: Record<string, unknown> });
    for (const [name, value] of Object.entries(features)) {
      if (value !== null && typeof value !== 'number') {
        throw new CompareInputError(`${where}: features.${name} is ${JSON.stringify(value)}, expected a number`);
      }
      row[name] = value;
    }
    for (const [name, value] of Object.entries(scalars(record))) if (!Object.hasOwn(row, name) || reserved.has(name)) row[name] = value;
    return { row, features: Object.keys(features).filter((name) => !reserved.has(name)), written };
  }
  const row = Object.assign(byName<unknown>(), record);
  return { row, features: Object.keys(scalars(record)).filter((name) => !reserved.has(name)), written: row };
}

/** A field of a prediction-log record's row (score, label, slice) as the record writes it: a top-level scalar, else a feature, else a request field. */
function asWritten(record: Record<string, unknown> & { features: Record<string, unknown> }, name: string): unknown {
  if (Object.hasOwn(record, name) && isScalar(record[name])) return record[name];
  if (Object.hasOwn(record.features, name)) return record.features[name];
  return isObject(record.request) && Object.hasOwn(record.request, name) && isScalar(record.request[name])
    ? record.request[name]
    : undefined;
}

function defaultedOf(value: unknown, where: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string')) {
    throw new CompareInputError(`${where}: defaulted is ${JSON.stringify(value)}, expected an array of feature names`);
  }
  return value as string[];
}

/** A row's score; one out of [0, 1] is told as the record writes it (`written`), not as the float32 read. */
function scoreOf(value: unknown, field: string, where: string, written: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new CompareInputError(`${where}: ${field} is ${JSON.stringify(written)}, expected a probability in [0, 1]`);
  }
  return value;
}

function labelOf(value: unknown, field: string, where: string): 0 | 1 | undefined {
  if (value === undefined || value === null) return undefined;
  if (value === 0 || value === false) return 0;
  if (value === 1 || value === true) return 1;
  throw new CompareInputError(`${where}: ${field} is ${JSON.stringify(value)}, expected 0, 1, true or false`);
}

const isScalar = (value: unknown) => value === null || ['number', 'string', 'boolean'].includes(typeof value);

function scalars(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => isScalar(v)));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
