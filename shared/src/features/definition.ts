/**
 * Feature groups are plain typed data (Feast's FeatureView, Chronon's GroupBy): a source
 * of events, the entity key, aggregations over sliding windows, a TTL and defaults.
 * `compileFeatureGroup` validates a definition and names the offending group and field.
 */
import { AGGREGATION_OPS, OP_COMPONENTS, type AggregationOp, type Component } from './aggregations.js';
import { formatDuration, parseDuration } from './duration.js';
import { tileSizeFor } from './tiles.js';

export interface EventSource {
  /** Name used by the push API (`POST /v1/events/:source`) and by feature groups. */
  name: string;
  /** Kafka topic the events are published to. */
  topic: string;
  /** Field whose value keys the Kafka record (partitioning). */
  keyField: string;
  /** Field with the event time: epoch milliseconds or an ISO-8601 string. */
  eventTimeField: string;
  /** Field with the event's unique id. */
  eventIdField: string;
}

export interface Aggregation {
  /** Input column, or `*` for `count` of events. */
  column: string;
  op: AggregationOp;
  windows: string[];
}

export const FILTER_OPS = ['eq', 'ne', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte'] as const;
export type FilterOp = (typeof FILTER_OPS)[number];

/** Only events whose field passes every filter of a group are aggregated by it. */
export interface FieldFilter {
  field: string;
  op: FilterOp;
  /** A number or string; a list for `in` / `not_in`. */
  value: number | string | (number | string)[];
}

export interface FeatureGroup {
  name: string;
  version: number;
  /** Source name (see EventSource). */
  source: string;
  /**
   * Entity key field in the source's events, also the entity type (e.g. `user_id`); or
   * several fields for a composite key (e.g. `['user_id', 'merchant_id']`: the type is
   * `user_id+merchant_id`, an entity's id its fields' values joined by `+`, see `compositeId`).
   */
  entity: string | string[];
  aggregations: Aggregation[];
  /** Keys of an entity expire this long after its last update. */
  ttl: string;
  /** Values used when a feature is missing, by feature name. */
  defaults?: Record<string, number>;
  /** Only events passing every filter are aggregated (e.g. `{ field: 'channel', op: 'eq', value: 'web' }`). */
  filters?: FieldFilter[];
}

export interface FeatureSpec {
  /** Name within the group, e.g. `amount_sum_1h`. */
  name: string;
  column: string;
  op: AggregationOp;
  /** The window as declared (e.g. `1h`). */
  window: string;
  windowMs: number;
  tileMs: number;
  default: number | null;
}

export interface CompiledFeatureGroup {
  definition: FeatureGroup;
  /** The entity type: the key field, or the key fields joined by `+`. */
  entity: string;
  /** The key field(s), in the declared order. */
  entityFields: string[];
  /** The entity id of an event's (or a request's) fields: null unless every key field is a non-empty string. */
  entityId(values: Record<string, unknown>): string | null;
  /** `name:v<version>`: identifies the group's state in the online store. */
  id: string;
  features: FeatureSpec[];
  /** For each tile size, each column's components to maintain. */
  tiles: Map<number, Map<string, Set<Component>>>;
  /** The same as flat arrays, for the pipeline's hot path. */
  layout: { tileMs: number; columns: { column: string; components: Component[] }[] }[];
  ttlMs: number;
  /** The longest window (a tile is pruned once it is older than the longest window read from tiles of its size). */
  maxWindowMs: number;
  /** Whether an event's fields pass the group's filters. */
  accepts(values: Record<string, unknown>): boolean;
}

function filterPredicate(filter: FieldFilter): (values: Record<string, unknown>) => boolean {
  const { field, op, value } = filter;
  const list = Array.isArray(value) ? value : [value];
  return (values) => {
    const actual = values[field];
    switch (op) {
      case 'eq':
        return actual === value;
      case 'ne':
        return actual !== value;
      case 'in':
        return list.includes(actual as number | string);
      case 'not_in':
        return !list.includes(actual as number | string);
      case 'gt':
        return typeof actual === 'number' && actual > (value as number);
      case 'gte':
        return typeof actual === 'number' && actual >= (value as number);
      case 'lt':
        return typeof actual === 'number' && actual < (value as number);
      case 'lte':
        return typeof actual === 'number' && actual <= (value as number);
    }
  };
}

export class FeatureDefinitionError extends Error {
  constructor(group: string, field: string, message: string) {
    super(`feature group "${group}": ${field}: ${message}`);
    this.name = 'FeatureDefinitionError';
  }
}

const NAME = /^[a-z][a-z0-9_]*$/;

/**
 * The id of a composite entity: its key values joined by `+`, each `\\` and `+` in a value
 * escaped with a backslash, so that different values never give the same id.
 */
export function compositeId(values: string[]): string {
  return values.map((v) => v.replace(/[\\+]/g, '\\$&')).join('+');
}

function entityIdOf(fields: string[]): (values: Record<string, unknown>) => string | null {
  if (fields.length === 1) {
    const field = fields[0]!;
    return (values) => {
      const id = values[field];
      return typeof id === 'string' && id.length > 0 ? id : null;
    };
  }
  return (values) => {
    const parts: string[] = [];
    for (const field of fields) {
      const id = values[field];
      if (typeof id !== 'string' || id.length === 0) return null;
      parts.push(id);
    }
    return compositeId(parts);
  };
}

export function featureName(aggregation: Aggregation, window: string): string {
  return aggregation.op === 'count' && aggregation.column === '*' ? `count_${window}` : `${aggregation.column}_${aggregation.op}_${window}`;
}

export function compileFeatureGroup(group: FeatureGroup, sources: EventSource[]): CompiledFeatureGroup {
  const label = typeof group.name === 'string' ? group.name : '?';
  const fail = (field: string, message: string): never => {
    throw new FeatureDefinitionError(label, field, message);
  };
  if (!NAME.test(group.name ?? '')) fail('name', 'must match [a-z][a-z0-9_]*');
  if (!Number.isInteger(group.version) || group.version < 1) fail('version', 'must be an integer >= 1');
  if (!sources.some((s) => s.name === group.source)) {
    fail('source', `unknown source "${group.source}" (known: ${sources.map((s) => s.name).join(', ')})`);
  }
  const entityFields = Array.isArray(group.entity) ? group.entity : [group.entity];
  if (entityFields.length === 0) fail('entity', 'must name at least one key field');
  entityFields.forEach((field, i) => {
    const at = Array.isArray(group.entity) ? `entity[${i}]` : 'entity';
    if (!NAME.test(field ?? '')) fail(at, 'must be a field name matching [a-z][a-z0-9_]*');
    if (entityFields.indexOf(field) !== i) fail(at, `"${field}" is named twice`);
  });
  let ttlMs = 0;
  try {
    ttlMs = parseDuration(group.ttl);
  } catch (error) {
    fail('ttl', (error as Error).message);
  }
  if (!Array.isArray(group.aggregations) || group.aggregations.length === 0) {
    fail('aggregations', 'must list at least one aggregation');
  }
  const features: FeatureSpec[] = [];
  const tiles = new Map<number, Map<string, Set<Component>>>();
  group.aggregations.forEach((aggregation, i) => {
    const at = `aggregations[${i}]`;
    if (!AGGREGATION_OPS.includes(aggregation.op)) {
      fail(`${at}.op`, `unknown operation "${aggregation.op}" (known: ${AGGREGATION_OPS.join(', ')})`);
    }
    if (aggregation.column === '*' ? aggregation.op !== 'count' : !NAME.test(aggregation.column ?? '')) {
      fail(`${at}.column`, 'must be a field name, or `*` with op count');
    }
    if (!Array.isArray(aggregation.windows) || aggregation.windows.length === 0) {
      fail(`${at}.windows`, 'must list at least one window');
    }
    for (const window of aggregation.windows) {
      let windowMs = 0;
      try {
        windowMs = parseDuration(window);
      } catch (error) {
        fail(`${at}.windows`, (error as Error).message);
      }
      const tileMs = tileSizeFor(windowMs);
      // A read takes whole tiles, up to a tile older than the window: the ttl must outlast that, or an entity
      // silent past its ttl would read differently by whether its state was still in the pipeline's memory.
      if (windowMs + tileMs > ttlMs) {
        const reach = formatDuration(windowMs + tileMs);
        fail(
          `${at}.windows`,
          `window ${window} reads whole ${formatDuration(tileMs)} tiles, back up to ${reach}: the ttl ${group.ttl} must be at least ${reach}`,
        );
      }
      const name = featureName(aggregation, window);
      if (features.some((f) => f.name === name)) fail(`${at}`, `feature "${name}" is defined twice`);
      const columns = tiles.get(tileMs) ?? new Map<string, Set<Component>>();
      tiles.set(tileMs, columns);
      const components = columns.get(aggregation.column) ?? new Set<Component>();
      columns.set(aggregation.column, components);
      for (const component of OP_COMPONENTS[aggregation.op]) components.add(component);
      features.push({
        name,
        column: aggregation.column,
        op: aggregation.op,
        window,
        windowMs,
        tileMs,
        default: group.defaults?.[name] ?? null,
      });
    }
  });
  for (const key of Object.keys(group.defaults ?? {})) {
    if (!features.some((f) => f.name === key)) fail(`defaults.${key}`, 'names no feature of this group');
    if (!Number.isFinite(group.defaults![key])) fail(`defaults.${key}`, 'must be a finite number');
  }
  const predicates = (group.filters ?? []).map((filter, i) => {
    const at = `filters[${i}]`;
    if (!NAME.test(filter?.field ?? '')) fail(`${at}.field`, 'must be a field name matching [a-z][a-z0-9_]*');
    if (!FILTER_OPS.includes(filter.op)) fail(`${at}.op`, `unknown operation "${filter.op}" (known: ${FILTER_OPS.join(', ')})`);
    const listOp = filter.op === 'in' || filter.op === 'not_in';
    const numericOp = ['gt', 'gte', 'lt', 'lte'].includes(filter.op);
    const scalar = (v: unknown) => (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string';
    if (listOp && (!Array.isArray(filter.value) || filter.value.length === 0 || !filter.value.every(scalar))) {
      fail(`${at}.value`, `must be a non-empty list of numbers or strings for ${filter.op}`);
    }
    if (numericOp && !(typeof filter.value === 'number' && Number.isFinite(filter.value)))
      fail(`${at}.value`, `must be a finite number for ${filter.op}`);
    if (!listOp && !numericOp && !scalar(filter.value)) fail(`${at}.value`, 'must be a number or a string');
    return filterPredicate(filter);
  });
  const maxWindowMs = Math.max(...features.map((f) => f.windowMs));
  return {
    definition: group,
    entity: entityFields.join('+'),
    entityFields,
    entityId: entityIdOf(entityFields),
    id: `${group.name}:v${group.version}`,
    features,
    tiles,
    layout: [...tiles].map(([tileMs, columns]) => ({
      tileMs,
      columns: [...columns].map(([column, components]) => ({ column, components: [...components] })),
    })),
    ttlMs,
    maxWindowMs,
    accepts: predicates.length === 0 ? () => true : (values) => predicates.every((p) => p(values)),
  };
}
