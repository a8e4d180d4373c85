/**
 * Aggregations are pure: each is a set of mergeable state components (sums, extremes,
 * newest value) that tiles store; `finalize` turns merged components into the feature
 * value. Components are shared between aggregations of one column (`mean` and `stddev`
 * both keep the moments `mv`), so a tile stores each component once.
 */
import { addToSketch, estimateDistinct, mergeSketches, sketchOf, type DistinctSketch } from './distinct-sketch.js';

export const AGGREGATION_OPS = ['count', 'sum', 'mean', 'min', 'max', 'last', 'stddev', 'distinct_count'] as const;
export type AggregationOp = (typeof AGGREGATION_OPS)[number];

/**
 * How a component merges: added, kept as the smaller/larger, the newest by event time, or
 * as moments (count, mean, sum of squared deviations) combined with Chan's parallel
 * formula, which keeps mean and stddev exact where a sum of squares would cancel out.
 */
export type MergeKind = 'add' | 'min' | 'max' | 'last' | 'moments' | 'sketch';
export type Component = 'n' | 's' | 'mv' | 'mn' | 'mx' | 'lv' | 'dc';

export const COMPONENT_MERGE: Record<Component, MergeKind> = {
  n: 'add',
  s: 'add',
  mv: 'moments',
  mn: 'min',
  mx: 'max',
  lv: 'last',
  dc: 'sketch',
};

export const OP_COMPONENTS: Record<AggregationOp, readonly Component[]> = {
  count: ['n'],
  sum: ['s'],
  mean: ['mv'],
  min: ['mn'],
  max: ['mx'],
  last: ['lv'],
  stddev: ['mv'],
  distinct_count: ['dc'],
};

export interface Moments {
  n: number;
  mean: number;
  m2: number;
}

/** The state of one component: a number, for `last` a value with its event time, or moments. */
export type ComponentValue = number | { time: number; value: number | string } | Moments | DistinctSketch;

/** Chan et al.'s combination of two sets of moments. */
export function mergeMoments(a: Moments, b: Moments): Moments {
  const n = a.n + b.n;
  if (n === 0) return { n: 0, mean: 0, m2: 0 };
  const delta = b.mean - a.mean;
  return { n, mean: a.mean + (delta * b.n) / n, m2: a.m2 + b.m2 + (delta * delta * a.n * b.n) / n };
}

/** Welford's update of the moments with one value, in place. */
export function addToMoments(m: Moments, x: number): void {
  const n = m.n + 1;
  const delta = x - m.mean;
  const mean = m.mean + delta / n;
  m.m2 += delta * (x - mean);
  m.mean = mean;
  m.n = n;
}

export type ComponentState = Partial<Record<Component, ComponentValue>>;

/**
 * A column's components in a tile, none set yet. Every column state is made here, with all
 * seven components in one order (unset ones undefined): one object shape for all of them, so
 * that the pipeline's reads and writes of components stay monomorphic. Column states built
 * key by key took a shape per combination of components: reading every component of a
 * user's state by name took 6.8 µs then, 3.8 µs with one shape (measured apart). The price:
 * a state takes ~16% more heap in the pipeline (docs/feature-engine.md).
 */
export function emptyComponents(): ComponentState {
  return { n: undefined, s: undefined, mv: undefined, mn: undefined, mx: undefined, lv: undefined, dc: undefined };
}

/**
 * Adds one event's value to a component in place (the pipeline's hot path); equal to merging,
 * with `mergeComponent`, the component of that one value (1 for a count, the value for a sum,
 * min or max, moments of one value, the value with its time for `last`, a sketch of it),
 * without the garbage.
 * The component's value object (moments, last value, sketch) is changed in place: it must
 * belong to `state` alone.
 */
export function updateComponent(state: ComponentState, component: Component, value: number | string, eventTime: number): void {
  // Named reads and writes: one shape for every column state (emptyComponents) keeps each monomorphic.
  switch (component) {
    case 'n':
      state.n = state.n === undefined ? 1 : (state.n as number) + 1;
      return;
    case 's':
      state.s = state.s === undefined ? Number(value) : (state.s as number) + (value as number);
      return;
    case 'mn':
      if (state.mn === undefined || (value as number) < (state.mn as number)) state.mn = Number(value);
      return;
    case 'mx':
      if (state.mx === undefined || (value as number) > (state.mx as number)) state.mx = Number(value);
      return;
    case 'lv': {
      const last = state.lv as { time: number; value: number | string } | undefined;
      if (last === undefined) state.lv = { time: eventTime, value };
      else if (eventTime >= last.time) {
        last.time = eventTime;
        last.value = value;
      }
      return;
    }
    case 'mv': {
      const m = state.mv as Moments | undefined;
      if (m === undefined) {
        state.mv = { n: 1, mean: Number(value), m2: 0 };
        return;
      }
      addToMoments(m, value as number);
      return;
    }
    case 'dc':
      state.dc = state.dc === undefined ? sketchOf(String(value)) : addToSketch(state.dc as DistinctSketch, String(value));
      return;
  }
}

export function mergeComponent(component: Component, a: ComponentValue | undefined, b: ComponentValue): ComponentValue {
  if (a === undefined) return b;
  switch (COMPONENT_MERGE[component]) {
    case 'add':
      return (a as number) + (b as number);
    case 'min':
      return Math.min(a as number, b as number);
    case 'max':
      return Math.max(a as number, b as number);
    case 'last': {
      const x = a as { time: number; value: number | string };
      const y = b as { time: number; value: number | string };
      return y.time >= x.time ? y : x;
    }
    case 'moments':
      return mergeMoments(a as Moments, b as Moments);
    case 'sketch':
      return mergeSketches(a as DistinctSketch, b as DistinctSketch);
  }
}

/** The feature value from merged components; `null` when the window saw no value. */
export function finalize(op: AggregationOp, state: ComponentState): number | string | null {
  const moments = state.mv as Moments | undefined;
  switch (op) {
    case 'count':
      return (state.n as number | undefined) ?? 0;
    case 'sum':
      return (state.s as number | undefined) ?? 0;
    case 'mean':
      return moments && moments.n > 0 ? moments.mean : null;
    case 'min':
      return (state.mn as number | undefined) ?? null;
    case 'max':
      return (state.mx as number | undefined) ?? null;
    case 'last': {
      const last = state.lv as { value: number | string } | undefined;
      return last ? last.value : null;
    }
    case 'stddev':
      // A spread past the range of doubles (m2 -Infinity or NaN from values near ±1e308) is none, not a clamped 0.
      return moments && moments.n > 0 && Number.isFinite(moments.m2) ? Math.sqrt(Math.max(0, moments.m2 / moments.n)) : null;
    case 'distinct_count':
      return state.dc ? estimateDistinct(state.dc as DistinctSketch) : 0;
  }
}
