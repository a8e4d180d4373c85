/**
 * Assembles a model's input vector in the order its manifest declares, from stored
 * feature-group state, request fields and on-demand features, replacing missing or stale
 * values with declared defaults and saying where each value came from.
 */
import type { EntityKey } from '../online-store/types.js';
import type { CompiledFeatureGroup } from './definition.js';
import type { FeatureValue, OnDemandFeature } from './on-demand.js';
import { readFeatureValues, type FeatureValues } from './tile-state.js';

export type FeatureSource = 'store' | 'request' | 'on_demand' | 'default';

export interface FeatureExplanation {
  name: string;
  value: number;
  source: FeatureSource;
  /** Age of the newest event behind a stored feature, ms; null for other sources. */
  age_ms: number | null;
}

export interface FeatureCatalog {
  groups: CompiledFeatureGroup[];
  onDemand: OnDemandFeature[];
}

export interface FeaturePlan {
  names: string[];
  /** Groups to fetch, with the entity type whose id keys them. */
  groups: CompiledFeatureGroup[];
  /** Entity key fields the request must name (each field of a composite key). */
  entities: string[];
  defaults: number[];
  catalog: FeatureCatalog;
  /** The features of each planned group (by group id) the model needs, directly or as on-demand inputs. */
  needed: Map<string, Set<string>>;
}

export class FeaturePlanError extends Error {
  override name = 'FeaturePlanError';
}

/** Split references, kept: a prediction splits the same few names again and again. */
const splitRefs = new Map<string, [string, string]>();

function splitRef(ref: string): [string, string] {
  let split = splitRefs.get(ref);
  if (split) return split;
  const colon = ref.indexOf(':');
  if (colon <= 0) throw new FeaturePlanError(`feature "${ref}" must be written <group>:<feature>, request:<field> or on_demand:<name>`);
  split = [ref.slice(0, colon), ref.slice(colon + 1)];
  if (splitRefs.size < 10_000) splitRefs.set(ref, split);
  return split;
}

/** Checks every feature a model needs exists and works out what to fetch for it. */
export function planFeatures(names: string[], catalog: FeatureCatalog, modelDefaults: Record<string, number> = {}): FeaturePlan {
  const groups = new Map<string, CompiledFeatureGroup>();
  const needed = new Map<string, Set<string>>();
  const defaults: number[] = [];
  const resolveGroupRef = (ref: string): number | null => {
    const [scope, name] = splitRef(ref);
    if (scope === 'request') return 0;
    const group = catalog.groups.find((g) => g.definition.name === scope);
    if (!group) throw new FeaturePlanError(`feature "${ref}": no feature group "${scope}"`);
    const feature = group.features.find((f) => f.name === name);
    if (!feature) throw new FeaturePlanError(`feature "${ref}": group "${scope}" has no feature "${name}"`);
    groups.set(group.id, group);
    if (!needed.has(group.id)) needed.set(group.id, new Set());
    needed.get(group.id)!.add(name);
    return feature.default;
  };
  for (const ref of names) {
    const [scope, name] = splitRef(ref);
    let fallback: number | null;
    if (scope === 'on_demand') {
      const feature = catalog.onDemand.find((f) => f.name === name);
      if (!feature) throw new FeaturePlanError(`feature "${ref}": no on-demand feature "${name}"`);
      for (const input of feature.inputs) resolveGroupRef(input);
      fallback = feature.default;
    } else {
      fallback = resolveGroupRef(ref);
    }
    defaults.push(modelDefaults[ref] ?? fallback ?? 0);
  }
  const planned = [...groups.values()];
  return {
    names,
    groups: planned,
    entities: [...new Set(planned.flatMap((g) => g.entityFields))],
    defaults,
    catalog,
    needed,
  };
}

/** The online-store keys to read for a request's entities, in plan order. */
export function entityKeys(plan: FeaturePlan, entities: Record<string, string>): EntityKey[] {
  return plan.groups.map((group) => ({ group: group.id, entity: group.entity, id: group.entityId(entities)! }));
}

export interface AssembledVector {
  vector: Float32Array;
  explanation: FeatureExplanation[];
  defaulted: string[];
  /** Per feature group: the age of the newest event behind its values (ms), null when it has none. */
  ages: Record<string, number | null>;
}

/**
 * `states` are the stored fields of each planned group (null when absent), or null for
 * all when the store could not be read (the prediction is then degraded).
 */
export function assembleVector(
  plan: FeaturePlan,
  states: (Record<string, string | Buffer> | null)[] | null,
  request: Record<string, unknown>,
  now: number,
  /** Whether to say where each value came from (left empty otherwise: one allocation less per feature). */
  explain = true,
): AssembledVector {
  const groupValues = new Map<string, FeatureValues & { stale: boolean }>();
  const ages: Record<string, number | null> = {};
  plan.groups.forEach((group, i) => {
    const values = readFeatureValues(group, states?.[i] ?? null, now, plan.needed.get(group.id));
    const stale = values.newestEventTime !== null && now - values.newestEventTime > group.ttlMs;
    groupValues.set(group.definition.name, { ...values, stale });
    ages[group.definition.name] = values.newestEventTime === null ? null : now - values.newestEventTime;
  });
  const lookup = (ref: string): { value: FeatureValue; age: number | null } => {
    const [scope, name] = splitRef(ref);
    if (scope === 'request') {
      const value = request[name];
      return { value: typeof value === 'number' || typeof value === 'string' ? value : null, age: null };
    }
    const group = groupValues.get(scope);
    if (!group || group.stale || group.newestEventTime === null) return { value: null, age: null };
    return { value: group.values[name] ?? null, age: now - group.newestEventTime };
  };
  const vector = new Float32Array(plan.names.length);
  const explanation: FeatureExplanation[] = [];
  const defaulted: string[] = [];
  plan.names.forEach((ref, i) => {
    const [scope, name] = splitRef(ref);
    let value: FeatureValue = null;
    let age: number | null = null;
    let source: FeatureSource;
    if (scope === 'on_demand') {
      const feature = plan.catalog.onDemand.find((f) => f.name === name)!;
      const inputs: Record<string, FeatureValue> = {};
      for (const input of feature.inputs) inputs[input] = lookup(input).value;
      value = feature.compute(inputs, { request, now });
      source = 'on_demand';
    } else {
      ({ value, age } = lookup(ref));
      source = scope === 'request' ? 'request' : 'store';
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      value = plan.defaults[i]!;
      source = 'default';
      age = null;
      defaulted.push(ref);
    }
    vector[i] = value;
    if (explain) explanation.push({ name: ref, value, source, age_ms: age });
  });
  return { vector, explanation, defaulted, ages };
}
