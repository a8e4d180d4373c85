/**
 * Assembles a model's input vector in the order its manifest declares, from stored
 * feature-group state, request fields and on-demand features, replacing missing or stale
 * values with declared defaults and saying where each value came from.
 */
import type { TSchema } from 'typebox';
import type { EntityKey } from '../online-store/types.js';
import type { CompiledFeatureGroup, EventSource } from './definition.js';
import {
  compileFeatureType,
  describeType,
  encodeFeature,
  featureKind,
  fitsJsonType,
  missingRequestField,
  NO_CATEGORY,
  typeAccepts,
  typeOfKind,
  type CompiledFeatureType,
  type FeatureDefault,
  type FeatureTypeSpec,
} from './feature-types.js';
import type { FeatureValue, OnDemandFeature } from './on-demand.js';
import { readFeatureValues, type FeatureValues } from './tile-state.js';
import { float32Decimal } from '../records/prediction-json.js';

export type FeatureSource = 'store' | 'request' | 'on_demand' | 'default';

export interface FeatureExplanation {
  name: string;
  value: number;
  source: FeatureSource;
  /**
   * Age of the newest event of a stored feature's group, ms, also when the value was replaced by
   * its default (an age beyond the group's TTL says why); null for request and on-demand
   * features, and for a group with no state.
   */
  age_ms: number | null;
}

export interface FeatureCatalog {
  groups: CompiledFeatureGroup[];
  onDemand: OnDemandFeature[];
  /** The event schemas of the groups' sources: what type each column is (absent: not known). */
  sources?: (Pick<EventSource, 'name'> & { schema?: TSchema })[];
  /** The schema of a prediction request's `features`: what type each request field is (absent: not known). */
  requestFields?: TSchema;
}

/** The features of a model as its manifest lists them: names in input order, defaults and types. */
export interface ModelFeatureList {
  features: string[];
  defaults?: Record<string, FeatureDefault>;
  /** By feature; a feature without one is a number (manifests written before types). */
  feature_types?: Record<string, FeatureTypeSpec>;
}

export interface FeaturePlan {
  names: string[];
  /** Groups to fetch, with the entity type whose id keys them. */
  groups: CompiledFeatureGroup[];
  /** Entity key fields the request must name (each field of a composite key). */
  entities: string[];
  /** The value served for each feature when it is missing, stale or does not fit its type. */
  defaults: number[];
  /** Each feature's declared type; null: undeclared, a number (manifests written before types). */
  types: (CompiledFeatureType | null)[];
  /** Request fields the model reads directly and declares a type for: checked on every request. */
  requestTypes: { field: string; type: FeatureTypeSpec }[];
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

/**
 * Checks every feature a model needs exists, that the service produces each as its declared
 * type and that each default fits, and works out what to fetch. Throws a FeaturePlanError
 * naming the feature.
 */
export function planFeatures(
  names: string[],
  catalog: FeatureCatalog,
  modelDefaults: Record<string, FeatureDefault> = {},
  declaredTypes: Record<string, FeatureTypeSpec> = {},
): FeaturePlan {
  const groups = new Map<string, CompiledFeatureGroup>();
  const needed = new Map<string, Set<string>>();
  const defaults: number[] = [];
  const types: (CompiledFeatureType | null)[] = [];
  const requestTypes: FeaturePlan['requestTypes'] = [];
  const resolveGroupRef = (ref: string): number | null => {
    const [scope, name] = splitRef(ref);
    if (scope === 'request') {
      const missing = missingRequestField(name, catalog);
      if (missing) throw new FeaturePlanError(`feature "${ref}": ${missing}`);
      return 0;
    }
    const group = catalog.groups.find((g) => g.definition.name === scope);
    if (!group) throw new FeaturePlanError(`feature "${ref}": no feature group "${scope}"`);
    const feature = group.features.find((f) => f.name === name);
    if (!feature) throw new FeaturePlanError(`feature "${ref}": group "${scope}" has no feature "${name}"`);
    groups.set(group.id, group);
    if (!needed.has(group.id)) needed.set(group.id, new Set());
    needed.get(group.id)!.add(name);
    return feature.default;
  };
  for (const ref of Object.keys(declaredTypes)) {
    if (!names.includes(ref)) throw new FeaturePlanError(`feature_types names "${ref}", which is not in the model's features`);
  }
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
    const declared = declaredTypes[ref];
    const modelDefault = modelDefaults[ref];
    if (!declared) {
      if (modelDefault !== undefined && !(typeof modelDefault === 'number' && Number.isFinite(modelDefault))) {
        throw new FeaturePlanError(`feature "${ref}": its default ${JSON.stringify(modelDefault)} is not a number (it declares no type)`);
      }
      types.push(null);
      defaults.push(modelDefault ?? fallback ?? 0);
      continue;
    }
    const type = checkDeclaredType(ref, declared, catalog);
    types.push(type);
    if (scope === 'request') requestTypes.push({ field: name, type: declared });
    defaults.push(typedDefault(ref, type, modelDefault, fallback));
  }
  const planned = [...groups.values()];
  return {
    names,
    groups: planned,
    entities: [...new Set(planned.flatMap((g) => g.entityFields))],
    defaults,
    types,
    requestTypes,
    catalog,
    needed,
  };
}

/** planFeatures for the features a manifest lists. */
export function planModelFeatures(model: ModelFeatureList, catalog: FeatureCatalog): FeaturePlan {
  return planFeatures(model.features, catalog, model.defaults ?? {}, model.feature_types ?? {});
}

/**
 * The type of each feature as the service produces it, for a trainer to write into the
 * manifest it exports (a feature of no single type is a number). A string feature has no
 * type without a vocabulary: declare it a category.
 */
export function inferFeatureTypes(names: string[], catalog: FeatureCatalog): Record<string, FeatureTypeSpec> {
  const types: Record<string, FeatureTypeSpec> = {};
  for (const ref of names) {
    const { kind, produced } = featureKind(ref, catalog);
    const type = typeOfKind(kind);
    if (type === null) throw new FeaturePlanError(`feature "${ref}": ${produced}; declare it a category with its vocabulary`);
    types[ref] = { type };
  }
  return types;
}

function checkDeclaredType(ref: string, declared: FeatureTypeSpec, catalog: FeatureCatalog): CompiledFeatureType {
  const { type, vocabulary } = declared;
  if (type === 'category') {
    if (!vocabulary || vocabulary.length === 0) throw new FeaturePlanError(`feature "${ref}": a category needs its vocabulary`);
    const seen = new Set<string>();
    for (const value of vocabulary) {
      if (seen.has(value)) throw new FeaturePlanError(`feature "${ref}": the vocabulary lists "${value}" twice`);
      seen.add(value);
    }
  } else if (vocabulary !== undefined) {
    throw new FeaturePlanError(`feature "${ref}": only a category has a vocabulary (it is declared ${type})`);
  }
  const { kind, produced, missing } = featureKind(ref, catalog);
  if (missing) throw new FeaturePlanError(`feature "${ref}" is declared ${type}, but ${produced}`);
  if (!typeAccepts(type, kind)) {
    throw new FeaturePlanError(`feature "${ref}" is declared ${type}, but ${produced}`);
  }
  return compileFeatureType(declared);
}

/**
 * A typed feature's default, encoded: the manifest's, else the group's or on-demand
 * feature's (not for a category: those are numbers); a category without one serves NO_CATEGORY.
 */
function typedDefault(ref: string, type: CompiledFeatureType, modelDefault: FeatureDefault | undefined, fallback: number | null): number {
  const { spec } = type;
  if (modelDefault !== undefined) {
    const encoded = encodeFeature(type, modelDefault);
    if (encoded === null) {
      const expected = spec.type === 'category' ? 'one of its vocabulary' : describeType(spec);
      throw new FeaturePlanError(
        `feature "${ref}": its default ${JSON.stringify(modelDefault)} does not fit its type ${spec.type} (expected ${expected})`,
      );
    }
    return encoded;
  }
  if (spec.type === 'category') return NO_CATEGORY;
  const encoded = encodeFeature(type, fallback ?? 0);
  if (encoded === null) {
    throw new FeaturePlanError(
      `feature "${ref}": the default ${fallback} its definition declares does not fit its type ${spec.type}; give one in the manifest's defaults`,
    );
  }
  return encoded;
}

/** The first request field a request sends with a type other than the model declares, or null. */
export function requestTypeError(
  plan: FeaturePlan,
  fields: Record<string, unknown>,
): { field: string; type: FeatureTypeSpec['type']; expected: string } | null {
  for (const { field, type } of plan.requestTypes) {
    const value = fields[field];
    if (value === undefined || value === null) continue;
    if (!fitsJsonType(type, value)) return { field, type: type.type, expected: describeType(type) };
  }
  return null;
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
  /** Feature groups whose stored state could not be decoded (their features took their defaults), with the reason. */
  unreadable?: { group: string; reason: string }[];
  /** On-demand features whose function threw (they took their defaults), with the reason. */
  failedOnDemand?: { feature: string; reason: string }[];
}

/** Where a feature reference's value comes from, resolved once per plan. */
interface ValueSource {
  ref: string;
  /** Index into the plan's groups of the group a stored feature is read from; -1: a request field; -2: no such group. */
  group: number;
  name: string;
}

/** What `assembleVector` does for each feature of a plan, worked out once per plan. */
interface VectorStep extends ValueSource {
  onDemand: { feature: OnDemandFeature; inputs: ValueSource[] } | null;
}

const vectorSteps = new WeakMap<FeaturePlan, VectorStep[]>();

function valueSource(plan: FeaturePlan, ref: string): ValueSource {
  const [scope, name] = splitRef(ref);
  if (scope === 'request') return { ref, group: -1, name };
  // The last planned group of that name, as a lookup by name would find it.
  let group = -2;
  plan.groups.forEach((g, i) => {
    if (g.definition.name === scope) group = i;
  });
  return { ref, group, name };
}

function stepsOf(plan: FeaturePlan): VectorStep[] {
  let steps = vectorSteps.get(plan);
  if (steps) return steps;
  steps = plan.names.map((ref) => {
    const [scope, name] = splitRef(ref);
    if (scope !== 'on_demand') return { ...valueSource(plan, ref), onDemand: null };
    const feature = plan.catalog.onDemand.find((f) => f.name === name)!;
    return { ref, group: -2, name, onDemand: { feature, inputs: feature.inputs.map((input) => valueSource(plan, input)) } };
  });
  vectorSteps.set(plan, steps);
  return steps;
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
  const groupValues: (FeatureValues | null)[] = [];
  /** Per group, in plan order: the age of its newest event (null without state), stale or not. */
  const groupAges: (number | null)[] = [];
  const ages: Record<string, number | null> = {};
  let unreadable: AssembledVector['unreadable'];
  let failedOnDemand: AssembledVector['failedOnDemand'];
  plan.groups.forEach((group, i) => {
    let values: FeatureValues;
    try {
      values = readFeatureValues(group, states?.[i] ?? null, now, plan.needed.get(group.id));
    } catch (error) {
      // One malformed stored state: that group's features take their defaults, the others are read.
      (unreadable ??= []).push({ group: group.definition.name, reason: (error as Error).message });
      groupValues.push(null);
      groupAges.push(null);
      ages[group.definition.name] = null;
      return;
    }
    const newest = values.newestEventTime;
    const age = newest === null ? null : now - newest;
    // A group with no state, or whose newest event is older than its TTL, serves no value.
    groupValues.push(age === null || age > group.ttlMs ? null : values);
    groupAges.push(age);
    ages[group.definition.name] = age;
  });
  /** A stored or request value: a number or text, else null. */
  const valueOf = (source: ValueSource): FeatureValue => {
    if (source.group === -1) {
      const value = Object.hasOwn(request, source.name) ? request[source.name] : undefined;
      return typeof value === 'number' || typeof value === 'string' ? value : null;
    }
    const values = source.group < 0 ? null : groupValues[source.group];
    return values ? (values.values[source.name] ?? null) : null;
  };
  const steps = stepsOf(plan);
  const vector = new Float32Array(steps.length);
  const explanation: FeatureExplanation[] = [];
  const defaulted: string[] = [];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    let raw: unknown;
    let age: number | null = null;
    let source: FeatureSource;
    if (step.onDemand) {
      const inputs: Record<string, FeatureValue> = {};
      for (const input of step.onDemand.inputs) inputs[input.ref] = valueOf(input);
      // A function that throws on what a request sent serves its default, as a missing value does.
      try {
        raw = step.onDemand.feature.compute(inputs, { request, now });
      } catch (error) {
        raw = null;
        (failedOnDemand ??= []).push({ feature: step.name, reason: error instanceof Error ? error.message : String(error) });
      }
      source = 'on_demand';
    } else if (step.group === -1) {
      raw = Object.hasOwn(request, step.name) ? request[step.name] : undefined;
      source = 'request';
    } else {
      const values = step.group < 0 ? null : groupValues[step.group];
      raw = values ? (values.values[step.name] ?? null) : null;
      // The age of the group's newest event, kept when the value is replaced by its default:
      // an age beyond the group's TTL tells why.
      if (step.group >= 0) age = groupAges[step.group]!;
      source = 'store';
    }
    const type = plan.types[i];
    let value = type ? encodeFeature(type, raw) : typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    if (value === null) {
      value = plan.defaults[i]!;
      source = 'default';
      defaulted.push(step.ref);
    }
    vector[i] = value;
    // As the model receives it (a float32), written as the prediction log writes it.
    if (explain) explanation.push({ name: step.ref, value: float32Decimal(vector[i]!), source, age_ms: age });
  }
  const assembled: AssembledVector = { vector, explanation, defaulted, ages };
  if (unreadable) assembled.unreadable = unreadable;
  if (failedOnDemand) assembled.failedOnDemand = failedOnDemand;
  return assembled;
}
