import type { TSchema } from 'typebox';
import { Compile, Type } from '../typebox.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: 'malformed' | 'invalid'; detail: string };

export interface RecordValidator<T> {
  validate(value: unknown): Decoded<T>;
  /** Parses a Kafka record value (UTF-8 JSON) and validates it. */
  decode(value: Buffer | null): Decoded<T>;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

interface SchemaError {
  instancePath: string;
  schemaPath: string;
  message: string;
  keyword: string;
  params: unknown;
}

type SchemaNode = Record<string, unknown>;

/** The sub-schema at a JSON pointer (`#/properties/ts`), if there is one. */
function schemaAt(schema: TSchema, pointer: string): SchemaNode | undefined {
  let node: unknown = schema;
  for (const part of pointer.replace(/^#\/?/, '').split('/')) {
    if (part === '') continue;
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as SchemaNode)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return typeof node === 'object' && node !== null ? (node as SchemaNode) : undefined;
}

/** "a, b or c", each once. */
function either(items: string[]): string {
  const unique = [...new Set(items)];
  return unique.length > 1 ? `${unique.slice(0, -1).join(', ')} or ${unique.at(-1)}` : (unique[0] ?? '');
}

/** What each branch of a union accepts (those of a union in it too). */
const alternatives = (branches: SchemaNode[]): string[] =>
  branches.flatMap((branch) =>
    typeof branch.description !== 'string' && Array.isArray(branch.anyOf) ? alternatives(branch.anyOf as SchemaNode[]) : [expected(branch)],
  );

/** What a schema accepts, in a few words: its `description` if it has one, else what its type and bounds say. */
function expected(schema: SchemaNode): string {
  if (typeof schema.description === 'string') return schema.description;
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return either(schema.enum.map((value) => JSON.stringify(value)));
  if (Array.isArray(schema.anyOf)) return either(alternatives(schema.anyOf as SchemaNode[]));
  const bounds = (unit = '') =>
    [
      schema.minimum !== undefined && `>= ${String(schema.minimum)}`,
      schema.exclusiveMinimum !== undefined && `> ${String(schema.exclusiveMinimum)}`,
      schema.maximum !== undefined && `<= ${String(schema.maximum)}`,
      schema.exclusiveMaximum !== undefined && `< ${String(schema.exclusiveMaximum)}`,
      schema.minLength !== undefined && `of at least ${String(schema.minLength)}${unit}`,
      schema.maxLength !== undefined && `of at most ${String(schema.maxLength)}${unit}`,
    ]
      .filter((bound) => bound !== false)
      .map((bound) => ` ${bound}`)
      .join(' and');
  switch (schema.type) {
    case 'integer':
      return `an integer${bounds()}`;
    case 'number':
      return `a number${bounds()}`;
    case 'string':
      if (schema.format === 'date-time') return 'an RFC 3339 date-time';
      if (typeof schema.format === 'string') return `a string of format "${schema.format}"`;
      return `a string${typeof schema.pattern === 'string' ? ` matching ${schema.pattern}` : ''}${bounds(' characters')}`;
    case 'boolean':
      return 'a boolean';
    case 'null':
      return 'null';
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    default:
      return 'another value';
  }
}

/**
 * The union (anyOf) a schema error is a branch's error of, when none of its branches took the
 * value in (no branch's error is about a part of it): the outermost, whose every branch then
 * says what the value may be. An error inside a branch (an object's field) names that field.
 */
function unionOf(error: SchemaError, errors: SchemaError[]): SchemaError | undefined {
  const unions = errors.filter((e) => e.keyword === 'anyOf' && error.schemaPath.startsWith(`${e.schemaPath}/anyOf/`));
  const outermost = unions.sort((a, b) => a.schemaPath.length - b.schemaPath.length)[0];
  if (outermost === undefined) return undefined;
  const inside = errors.some(
    (e) =>
      e.schemaPath.startsWith(`${outermost.schemaPath}/anyOf/`) &&
      (e.instancePath !== outermost.instancePath || e.keyword === 'required' || e.keyword === 'additionalProperties'),
  );
  return inside ? undefined : outermost;
}

/** The first schema error as `field: message`, naming the offending field; a union's, as what each of its branches accepts. */
function describe(schema: TSchema, errors: SchemaError[]): string {
  const useful = errors.filter((e) => e.keyword !== 'boolean' && e.keyword !== 'anyOf');
  const error = useful[0] ?? errors[0];
  if (!error) return 'invalid record';
  const union = unionOf(error, errors);
  const at = union ?? error;
  const field = at.instancePath ? at.instancePath.slice(1).replaceAll('/', '.') : '(root)';
  if (union !== undefined) {
    const branches = schemaAt(schema, union.schemaPath)?.anyOf;
    if (Array.isArray(branches)) return `${field}: must be ${either(alternatives(branches as SchemaNode[]))}`;
  }
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperties?: string[] }).additionalProperties ?? [];
    return `${field === '(root)' ? '' : `${field}: `}unknown field(s) ${extra.map((f) => `"${f}"`).join(', ')}`;
  }
  if (error.keyword === 'pattern') {
    const described = schemaAt(schema, error.schemaPath.replace(/\/pattern$/, ''))?.description;
    if (typeof described === 'string') return `${field}: must be ${described}`;
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
      : { ok: false, reason: 'invalid', detail: describe(schema, [...compiled.Errors(value)] as SchemaError[]) };
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
  Type.Integer({ minimum: 0, maximum: MAX_EVENT_TIME, description: 'an epoch-milliseconds integer (0 to 8.64e15)' }),
  Type.String({ format: 'date-time', maxLength: 64, description: 'an RFC 3339 date-time' }),
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
    // A day the month does not have (2026-02-31): Date.parse would take it for a day of the next month.
    const [year, month, day] = [Number(value.slice(0, 4)), Number(value.slice(5, 7)), Number(value.slice(8, 10))];
    if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return null;
    const ms = Date.parse(value);
    return Number.isFinite(ms) && ms >= 0 ? ms : null;
  }
  return null;
}
