/**
 * Builders for the Grafana panels of the Tributary dashboards, typed against @grafana/schema
 * (the panel plug-ins' own option types, not loose records). Each builder returns a panel
 * without `id` or `gridPos`: `layout` numbers the panels and places them on the grid.
 */
import {
  AxisPlacement,
  BigValueColorMode,
  BigValueGraphMode,
  BigValueJustifyMode,
  BigValueTextMode,
  type DataQuery,
  type DataSourceRef,
  type DataTransformerConfig,
  type FieldConfigSource,
  FieldColorModeId,
  GraphDrawStyle,
  GraphThresholdsStyleMode,
  HeatmapCellLayout,
  LegendDisplayMode,
  type Panel,
  PercentChangeColorMode,
  type RowPanel,
  ScaleDistribution,
  SortOrder,
  StackingMode,
  ThresholdsMode,
  type Threshold,
  TooltipDisplayMode,
  VariableRefresh,
  VariableSort,
  type VariableModel,
  VisibilityMode,
  VizOrientation,
} from '@grafana/schema';
import {
  HeatmapColorMode,
  HeatmapColorScale,
  type Options as HeatmapOptions,
} from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type { Options as TableOptions } from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** The Prometheus data source that deploy/grafana/provisioning/datasources/prometheus.yml provisions. */
export const PROMETHEUS: DataSourceRef = { type: 'prometheus', uid: 'prometheus' };

/** A query of the Prometheus data source (its plug-in has no type in @grafana/schema). */
export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  editorMode?: 'code';
  interval?: string;
}

export type DashboardPanel = Panel<Record<string, unknown>, Record<string, unknown>>;

/** A panel before `layout` gives it an id and a place: its width and height in grid units. */
export interface Sized {
  panel: Omit<DashboardPanel, 'id' | 'gridPos'>;
  w: number;
  h: number;
}

export interface Section {
  title: string;
  panels: Sized[];
}

/** A range query, one series per label set, named by `legend`. */
export function query(expr: string, legend: string): Omit<PrometheusQuery, 'refId'> {
  return { datasource: PROMETHEUS, expr, legendFormat: legend, range: true, editorMode: 'code' };
}

/** An instant query whose result is a table (one row per series, one column per label). */
export function instant(expr: string): Omit<PrometheusQuery, 'refId'> {
  return { datasource: PROMETHEUS, expr, instant: true, range: false, format: 'table', editorMode: 'code' };
}

/** A panel target: a Prometheus query, as the loose record the dashboard schema types targets as. */
export type Target = PrometheusQuery & Record<string, unknown>;

function withRefIds(queries: Omit<PrometheusQuery, 'refId'>[]): Target[] {
  return queries.map((q, i) => ({ ...q, refId: String.fromCharCode(65 + i) }));
}

const GREEN: Threshold = { color: 'green', value: null };

function thresholds(steps: { value: number; color: string }[]) {
  return { mode: ThresholdsMode.Absolute, steps: [GREEN, ...steps] };
}

export interface TimeSeriesSpec {
  title: string;
  description: string;
  unit: string;
  queries: Omit<PrometheusQuery, 'refId'>[];
  stack?: boolean;
  min?: number;
  max?: number;
  /** A logarithmic value axis (base 10), for values spread over orders of magnitude. */
  logScale?: boolean;
  /** Draw these values as dashed threshold lines (an alert's threshold, for instance). */
  thresholds?: { value: number; color: string }[];
  w?: number;
  h?: number;
}

export function timeSeries(spec: TimeSeriesSpec): Sized {
  const custom = {
    drawStyle: GraphDrawStyle.Line,
    lineWidth: 1,
    fillOpacity: spec.stack ? 30 : 10,
    showPoints: VisibilityMode.Never,
    spanNulls: false,
    stacking: { mode: spec.stack ? StackingMode.Normal : StackingMode.None, group: 'A' },
    axisPlacement: AxisPlacement.Auto,
    thresholdsStyle: { mode: spec.thresholds ? GraphThresholdsStyleMode.Dashed : GraphThresholdsStyleMode.Off },
    ...(spec.logScale ? { scaleDistribution: { type: ScaleDistribution.Log, log: 10 } } : {}),
  } satisfies TimeSeriesFieldConfig;
  const options = {
    legend: { displayMode: LegendDisplayMode.Table, placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
    tooltip: { mode: TooltipDisplayMode.Multi, sort: SortOrder.Descending },
  } satisfies TimeSeriesOptions;
  const fieldConfig: FieldConfigSource = {
    defaults: {
      unit: spec.unit,
      ...(spec.min === undefined ? {} : { min: spec.min }),
      ...(spec.max === undefined ? {} : { max: spec.max }),
      color: { mode: FieldColorModeId.PaletteClassic },
      custom,
      thresholds: thresholds(spec.thresholds ?? []),
    },
    overrides: [],
  };
  return {
    panel: {
      type: 'timeseries',
      title: spec.title,
      description: spec.description,
      datasource: PROMETHEUS,
      fieldConfig,
      options,
      targets: withRefIds(spec.queries),
    },
    w: spec.w ?? 12,
    h: spec.h ?? 8,
  };
}

export interface StatSpec {
  title: string;
  description: string;
  unit: string;
  queries: Omit<PrometheusQuery, 'refId'>[];
  thresholds?: { value: number; color: string }[];
  /** Show the series name instead of the value (for an info metric such as the serving version). */
  showName?: boolean;
  w?: number;
  h?: number;
}

export function stat(spec: StatSpec): Sized {
  const options = {
    reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    orientation: VizOrientation.Auto,
    textMode: spec.showName ? BigValueTextMode.Name : BigValueTextMode.Auto,
    colorMode: BigValueColorMode.Value,
    graphMode: BigValueGraphMode.None,
    justifyMode: BigValueJustifyMode.Auto,
    wideLayout: true,
    showPercentChange: false,
    percentChangeColorMode: PercentChangeColorMode.Standard,
  } satisfies StatOptions;
  return {
    panel: {
      type: 'stat',
      title: spec.title,
      description: spec.description,
      datasource: PROMETHEUS,
      fieldConfig: { defaults: { unit: spec.unit, thresholds: thresholds(spec.thresholds ?? []) }, overrides: [] },
      options,
      targets: withRefIds(spec.queries),
    },
    w: spec.w ?? 6,
    h: spec.h ?? 4,
  };
}

export interface TableSpec {
  title: string;
  description: string;
  /** One instant query per value column, merged into one row per label set. */
  columns: { expr: string; name: string; unit?: string; decimals?: number; thresholds?: { value: number; color: string }[] }[];
  /** Label columns to hide (Time is always hidden). */
  hide?: string[];
  sortBy?: string;
  w?: number;
  h?: number;
}

/** A table of instant values: one query per column, merged on their labels (`merge`), renamed (`organize`). */
export function table(spec: TableSpec): Sized {
  const queries = withRefIds(spec.columns.map((c) => instant(c.expr)));
  const single = queries.length === 1;
  const valueColumn = (refId: string) => (single ? 'Value' : `Value #${refId}`);
  const renameByName: Record<string, string> = {};
  const excludeByName: Record<string, boolean> = { Time: true };
  for (const label of spec.hide ?? []) excludeByName[label] = true;
  spec.columns.forEach((c, i) => (renameByName[valueColumn(queries[i]!.refId)] = c.name));
  const transformations: DataTransformerConfig[] = [
    ...(single ? [] : [{ id: 'merge', options: {} }]),
    { id: 'organize', options: { excludeByName, renameByName, indexByName: {} } },
  ];
  const options = {
    showHeader: true,
    frameIndex: 0,
    ...(spec.sortBy ? { sortBy: [{ displayName: spec.sortBy, desc: true }] } : {}),
  } satisfies TableOptions;
  const overrides = spec.columns.map((c) => ({
    matcher: { id: 'byName', options: c.name },
    properties: [
      ...(c.unit ? [{ id: 'unit', value: c.unit }] : []),
      ...(c.decimals === undefined ? [] : [{ id: 'decimals', value: c.decimals }]),
      ...(c.thresholds
        ? [
            { id: 'thresholds', value: thresholds(c.thresholds) },
            { id: 'custom.cellOptions', value: { type: 'color-background' } },
          ]
        : []),
    ],
  }));
  return {
    panel: {
      type: 'table',
      title: spec.title,
      description: spec.description,
      datasource: PROMETHEUS,
      fieldConfig: { defaults: {}, overrides },
      options,
      targets: queries,
      transformations,
    },
    w: spec.w ?? 24,
    h: spec.h ?? 9,
  };
}

export interface HeatmapSpec {
  title: string;
  description: string;
  /** A `sum by (le) (increase(..._bucket[...]))` query: Grafana draws the buckets as rows. */
  expr: string;
  yUnit: string;
  w?: number;
  h?: number;
}

/** A heat map of a Prometheus histogram over time (buckets as rows, counts as colour). */
export function heatmap(spec: HeatmapSpec): Sized {
  const options = {
    calculate: false,
    cellGap: 1,
    color: {
      exponent: 0.5,
      fill: 'dark-orange',
      mode: HeatmapColorMode.Scheme,
      reverse: false,
      scale: HeatmapColorScale.Exponential,
      scheme: 'Oranges',
      steps: 64,
    },
    exemplars: { color: 'rgba(255,0,255,0.7)' },
    filterValues: { le: 1e-9 },
    legend: { show: true },
    rowsFrame: { layout: HeatmapCellLayout.auto },
    showValue: VisibilityMode.Never,
    tooltip: { mode: TooltipDisplayMode.Single, yHistogram: true, showColorScale: false },
    yAxis: { axisPlacement: AxisPlacement.Left, unit: spec.yUnit, reverse: false },
  } satisfies HeatmapOptions;
  return {
    panel: {
      type: 'heatmap',
      title: spec.title,
      description: spec.description,
      datasource: PROMETHEUS,
      fieldConfig: { defaults: {}, overrides: [] },
      options,
      targets: withRefIds([{ ...query(spec.expr, '{{le}}'), format: 'heatmap', interval: '1m' }]),
    },
    w: spec.w ?? 12,
    h: spec.h ?? 8,
  };
}

/**
 * Lays sections out on Grafana's 24-column grid: a row per section, its panels left to right,
 * wrapping when a line is full. Ids are 1, 2, 3, ... in order.
 */
export function layout(sections: Section[]): (DashboardPanel | RowPanel)[] {
  const out: (DashboardPanel | RowPanel)[] = [];
  let id = 1;
  let y = 0;
  for (const section of sections) {
    out.push({ id: id++, type: 'row', title: section.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const { panel, w, h } of section.panels) {
      if (x + w > 24) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      out.push({ id: id++, ...panel, gridPos: { h, w, x, y } });
      x += w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return out;
}

/** A template variable listing the values of `label` on `metric`, all selected by default. */
export function labelVariable(name: string, label: string, metric: string): VariableModel {
  return {
    name,
    label,
    type: 'query',
    datasource: PROMETHEUS,
    query: { qryType: 1, query: `label_values(${metric}, ${name})`, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: VariableRefresh.onTimeRangeChanged,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { text: 'All', value: '$__all' },
    sort: VariableSort.alphabeticalAsc,
  };
}

/** A template variable with a fixed list of values, the first selected. */
export function customVariable(name: string, label: string, values: string[]): VariableModel {
  const options = values.map((v, i) => ({ text: v, value: v, selected: i === 0 }));
  return {
    name,
    label,
    type: 'custom',
    query: values.join(','),
    options,
    current: { text: values[0]!, value: values[0]! },
    includeAll: false,
    multi: false,
  };
}

/** The annotation every Grafana dashboard carries (alerts and annotations on the graphs). */
export const BUILT_IN_ANNOTATIONS = {
  list: [
    {
      builtIn: 1,
      datasource: { type: 'grafana', uid: '-- Grafana --' },
      enable: true,
      hide: true,
      iconColor: 'rgba(0, 211, 255, 1)',
      name: 'Annotations & Alerts',
      type: 'dashboard',
    },
  ],
};
