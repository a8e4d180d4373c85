/**
 * Feature types of a model's manifest: how each value the service produces (a stored
 * aggregate, a request field, an on-demand feature) becomes one float of the model's input.
 *
 *   number    any finite number, as is (a boolean counts 1 or 0)
 *   integer   a whole number, as is
 *   boolean   true/false (or 1/0), as 1/0
 *   category  a string, as its index in the declared vocabulary (0, 1, ...); a string
 *             outside the vocabulary takes the feature's default
 *
 * What the service produces for a feature reference (its kind) is known from the catalog:
 * the aggregation and the source's event schema, the request-field schema, the on-demand
 * declaration. A declared type that the kind cannot fill is refused when the model is
 * registered or loaded, with the reason.
 */
import type { Static, TSchema } from 'typebox';
import { Type } from '../typebox.js';
import type { FeatureSpec } from './definition.js';
import type { FeatureCatalog } from './feature-vector.js';

export const FEATURE_TYPES = ['number', 'integer', 'boolean', 'category'] as const;
export type FeatureType = (typeof FEATURE_TYPES)[number];

export const FeatureTypeSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('number'), Type.Literal('integer'), Type.Literal('boolean'), Type.Literal('category')], {
      description: 'number, integer, boolean or category',
    }),
    vocabulary: Type.Optional(
      Type.Array(Type.String({ maxLength: 256 }), {
        minItems: 1,
        maxItems: 100_000,
        description: 'a category: its values in order; a value is served as its index',
      }),
    ),
  },
  { additionalProperties: false },
);
export type FeatureTypeSpec = Static<typeof FeatureTypeSchema>;

/** A default as a manifest writes it: a number, a boolean, or a category's value. */
export type FeatureDefault = number | boolean | string;

/** What the service produces for a feature reference; `unknown` when it cannot tell (then checked per value). */
export type ValueKind = 'number' | 'integer' | 'boolean' | 'string' | 'unknown';

/** The code of a category value outside the vocabulary when the manifest declares no default. */
export const NO_CATEGORY = -1;

/** A feature's type, ready for the prediction path. */
export interface CompiledFeatureType {
  spec: FeatureTypeSpec;
  /** A category's value -> its index. */
  codes?: Map<string, number>;
}

export function compileFeatureType(spec: FeatureTypeSpec): CompiledFeatureType {
  return spec.type === 'category' ? { spec, codes: new Map(spec.vocabulary!.map((value, i) => [value, i])) } : { spec };
}

/**
 * The float a value is served as, or null when the value does not fit the type (a wrong
 * type, a fraction for an integer, a category value outside the vocabulary).
 */
export function encodeFeature(type: CompiledFeatureType, value: unknown): number | null {
  switch (type.spec.type) {
    case 'number':
      if (typeof value === 'number') return Number.isFinite(value) ? value : null;
      return typeof value === 'boolean' ? Number(value) : null;
    case 'integer':
      if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
      return typeof value === 'boolean' ? Number(value) : null;
    case 'boolean':
      if (typeof value === 'boolean') return Number(value);
      return value === 0 || value === 1 ? value : null;
    case 'category':
      return typeof value === 'string' ? (type.codes!.get(value) ?? null) : null;
  }
}

/** Whether a request value has the type's JSON type (a category value outside the vocabulary fits: it takes the default). */
export function fitsJsonType(type: FeatureTypeSpec, value: unknown): boolean {
  switch (type.type) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'category':
      return typeof value === 'string';
  }
}

/** What a type expects, in words, for error messages. */
export function describeType(type: FeatureTypeSpec): string {
  switch (type.type) {
    case 'number':
      return 'a number';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'a boolean';
    case 'category':
      return 'a string (a category)';
  }
}

/** The kinds each declared type can be filled from. */
const ACCEPTS: Record<FeatureType, readonly ValueKind[]> = {
  number: ['number', 'integer', 'boolean'],
  integer: ['integer', 'boolean'],
  boolean: ['boolean'],
  category: ['string'],
};

export function typeAccepts(type: FeatureType, kind: ValueKind): boolean {
  return kind === 'unknown' || ACCEPTS[type].includes(kind);
}

/** The type a feature gets when a trainer writes its manifest: its kind's own type. */
export function typeOfKind(kind: ValueKind): FeatureType | null {
  switch (kind) {
    case 'number':
    case 'unknown':
      return 'number';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'string':
      return null;
  }
}

/** The kind of values a JSON schema (TypeBox) admits: `unknown` when it admits several or cannot be told. */
export function schemaKind(schema: TSchema | undefined): ValueKind {
  if (!schema || typeof schema !== 'object') return 'unknown';
  const s = schema as { type?: unknown; const?: unknown; enum?: unknown[]; anyOf?: TSchema[]; oneOf?: TSchema[] };
  if ('const' in s) return kindOfValue(s.const);
  if (Array.isArray(s.enum)) return combine(s.enum.map(kindOfValue));
  const members = s.anyOf ?? s.oneOf;
  if (Array.isArray(members)) return combine(members.map(schemaKind));
  switch (s.type) {
    case 'number':
      return 'number';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      return 'unknown';
  }
}

function kindOfValue(value: unknown): ValueKind {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return 'unknown';
}

function combine(kinds: ValueKind[]): ValueKind {
  const set = new Set(kinds);
  if (set.size === 1) return kinds[0]!;
  if (set.size === 2 && set.has('number') && set.has('integer')) return 'number';
  return 'unknown';
}

/** The kind of a stored aggregate, from its operation and its column's kind in the source's events. */
export function aggregateKind(feature: Pick<FeatureSpec, 'op' | 'column'>, column: ValueKind): ValueKind {
  switch (feature.op) {
    case 'count':
    case 'distinct_count':
      return 'integer';
    case 'mean':
    case 'stddev':
      return 'number';
    case 'sum':
    case 'min':
    case 'max':
      // Only numbers are summed or compared (booleans are not aggregated at all).
      return column === 'integer' ? 'integer' : 'number';
    case 'last':
      // The pipeline keeps numbers and strings of an event, not booleans.
      return column === 'boolean' ? 'unknown' : column;
  }
}

/**
 * Why a request field cannot be read, when the request schema is closed (no additional
 * properties) and does not declare it; null otherwise. Only the schema's own properties count:
 * `constructor` or `__proto__` are no request fields.
 */
export function missingRequestField(name: string, catalog: FeatureCatalog): string | null {
  const schema = catalog.requestFields as { properties?: Record<string, unknown>; additionalProperties?: unknown } | undefined;
  if (!schema?.properties || schema.additionalProperties !== false || Object.hasOwn(schema.properties, name)) return null;
  return `the request schema has no field "${name}" (its fields: ${Object.keys(schema.properties).join(', ')})`;
}

/** What the service produces for a feature reference, and how that reads in an error message. */
export function featureKind(ref: string, catalog: FeatureCatalog): { kind: ValueKind; produced: string; missing?: true } {
  const colon = ref.indexOf(':');
  const scope = ref.slice(0, colon);
  const name = ref.slice(colon + 1);
  if (scope === 'request') {
    const schema = catalog.requestFields as { properties?: Record<string, TSchema>; additionalProperties?: unknown } | undefined;
    const missing = missingRequestField(name, catalog);
    if (missing) return { kind: 'unknown', produced: missing, missing: true };
    const kind = schemaKind(schema?.properties && Object.hasOwn(schema.properties, name) ? schema.properties[name] : undefined);
    return { kind, produced: `request field "${name}" is ${KIND_WORDS[kind]}` };
  }
  if (scope === 'on_demand') {
    const feature = catalog.onDemand.find((f) => f.name === name);
    const kind: ValueKind = feature?.type ?? 'number';
    return { kind, produced: `on-demand feature "${name}" computes ${KIND_WORDS[kind]}` };
  }
  const group = catalog.groups.find((g) => g.definition.name === scope);
  const feature = group?.features.find((f) => f.name === name);
  if (!group || !feature) return { kind: 'unknown', produced: 'unknown' };
  const source = catalog.sources?.find((s) => s.name === group.definition.source);
  const columns = (source?.schema as { properties?: Record<string, TSchema> } | undefined)?.properties;
  const column = feature.column === '*' ? 'integer' : columns ? schemaKind(columns[feature.column]) : 'unknown';
  const kind = aggregateKind(feature, column);
  const what = feature.column === '*' ? `the ${feature.op} of events` : `the ${feature.op} of "${feature.column}"`;
  return { kind, produced: `the store holds ${what}, ${KIND_WORDS[kind]}` };
}

const KIND_WORDS: Record<ValueKind, string> = {
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  string: 'a string',
  unknown: 'of no single type',
};
