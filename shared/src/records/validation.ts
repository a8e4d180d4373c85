import Type, { type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: 'malformed' | 'invalid'; detail: string };

export interface RecordValidator<T> {
  validate(value: unknown): Decoded<T>;
  /** Parses a Kafka record value (UTF-8 JSON) and validates it. */
  decode(value: Buffer | null): Decoded<T>;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The first schema error as `field: message`, naming the offending field. */
function describe(errors: { instancePath: string; message: string; keyword: string; params: unknown }[]): string {
  const useful = errors.filter((e) => e.keyword !== 'boolean' && e.keyword !== 'anyOf');
  const error = useful[0] ?? errors[0];
  if (!error) return 'invalid record';
  const field = error.instancePath ? error.instancePath.slice(1).replaceAll('/', '.') : '(root)';
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperties?: string[] }).additionalProperties ?? [];
    return `${field === '(root)' ? '' : `${field}: `}unknown field(s) ${extra.map((f) => `"${f}"`).join(', ')}`;
  }
  if (error.keyword === 'required') {
    const missing = (error.params as { requiredProperties?: string[] }).requiredProperties ?? [];
    return `missing required field(s) ${missing.map((f) => `"${field === '(root)' ? f : `${field}.${f}`}"`).join(', ')}`;
  }
  return `${field}: ${error.message}`;
}

/**
 * `accepts`: an optional quick test of the common case (a hot consumer's records), which must
 * never accept a value the schema refuses; when it does not accept, the schema decides and
 * names the error.
 */
export function recordValidator<T>(schema: TSchema, accepts?: (value: unknown) => boolean): RecordValidator<T> {
  const compiled = Compile(schema);
  const validate = (value: unknown): Decoded<T> =>
    accepts?.(value) === true || compiled.Check(value)
      ? { ok: true, value: value as T }
      : { ok: false, reason: 'invalid', detail: describe([...compiled.Errors(value)] as never) };
  return {
    validate,
    decode(raw) {
      if (raw === null || raw.length === 0) return { ok: false, reason: 'malformed', detail: 'empty record value' };
      let text: string;
      try {
        text = decoder.decode(raw);
      } catch {
        return { ok: false, reason: 'malformed', detail: 'record value is not valid UTF-8' };
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        return { ok: false, reason: 'malformed', detail: `invalid JSON: ${(error as Error).message}` };
      }
      return validate(parsed);
    },
  };
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The latest time a Date holds (epoch ms, +275760-09-13): a later one has no date to show or compare. */
export const MAX_EVENT_TIME = 8.64e15;

/** A record's event time: epoch ms up to MAX_EVENT_TIME, or a date-time (read by parseEventTime). */
export const EventTimeSchema = Type.Union([
  Type.Integer({ minimum: 0, maximum: MAX_EVENT_TIME }),
  Type.String({ format: 'date-time', maxLength: 64 }),
]);

/**
 * Event time as epoch ms from epoch milliseconds (0 to MAX_EVENT_TIME) or an ISO-8601 /
 * RFC 3339 date-time with a zone (`Z` or `±hh:mm`, so that every machine reads the same
 * instant); null when invalid.
 */
export function parseEventTime(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= MAX_EVENT_TIME ? value : null;
  if (typeof value === 'string') {
    if (!RFC3339.test(value)) return null;
    const ms = Date.parse(value);
    return Number.isFinite(ms) && ms >= 0 ? ms : null;
  }
  return null;
}
