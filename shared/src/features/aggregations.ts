/**
 * Aggregations are pure: each is a set of mergeable state components (sums, extremes,
 * newest value) that tiles store; `finalize` turns merged components into the feature
 * value. Components are shared between aggregations of one column (`sum` and `mean`
 * both keep `s`), so a tile stores each component once.
 */
export const AGGREGATION_OPS = ['count', 'sum', 'mean', 'min', 'max', 'last', 'stddev'] as const;
export type AggregationOp = (typeof AGGREGATION_OPS)[number];

/** How a component merges: added, kept as the smaller/larger, or the newest by event time. */
export type MergeKind = 'add' | 'min' | 'max' | 'last';
export type Component = 'n' | 's' | 'q' | 'mn' | 'mx' | 'lv';

export const COMPONENT_MERGE: Record<Component, MergeKind> = {
  n: 'add',
  s: 'add',
  q: 'add',
  mn: 'min',
  mx: 'max',
  lv: 'last',
};

export const OP_COMPONENTS: Record<AggregationOp, readonly Component[]> = {
  count: ['n'],
  sum: ['s'],
  mean: ['s', 'n'],
  min: ['mn'],
  max: ['mx'],
  last: ['lv'],
  stddev: ['n', 's', 'q'],
};

/** The state of one component: a number, or for `last` a value with its event time. */
export type ComponentValue = number | { time: number; value: number | string };

export type ComponentState = Partial<Record<Component, ComponentValue>>;

/** Contribution of one event's column value to each component. */
export function componentDelta(component: Component, value: number | string, eventTime: number): ComponentValue {
  switch (component) {
    case 'n':
      return 1;
    case 'lv':
      return { time: eventTime, value };
    case 's':
    case 'mn':
    case 'mx':
      return Number(value);
    case 'q':
      return Number(value) * Number(value);
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
  }
}

/** The feature value from merged components; `null` when the window saw no value. */
export function finalize(op: AggregationOp, state: ComponentState): number | string | null {
  const n = state.n as number | undefined;
  const s = state.s as number | undefined;
  switch (op) {
    case 'count':
      return n ?? 0;
    case 'sum':
      return s ?? 0;
    case 'mean':
      return n ? (s ?? 0) / n : null;
    case 'min':
      return (state.mn as number | undefined) ?? null;
    case 'max':
      return (state.mx as number | undefined) ?? null;
    case 'last': {
      const last = state.lv as { value: number | string } | undefined;
      return last ? last.value : null;
    }
    case 'stddev': {
      if (!n) return null;
      const mean = (s ?? 0) / n;
      const variance = Math.max(0, ((state.q as number | undefined) ?? 0) / n - mean * mean);
      return Math.sqrt(variance);
    }
  }
}
