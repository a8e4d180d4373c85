/**
 * The stored form of a feature group's state for one entity: a flat map of fields
 * `<tileMs>:<tileStart>:<column>:<component>` plus reserved fields (`_ts` the newest event
 * time applied). The pipeline turns events into field updates; the reader merges the
 * tiles of each window and finalizes. Both sides are pure; the online store only applies
 * updates with each field's merge kind.
 */
import {
  COMPONENT_MERGE,
  componentDelta,
  finalize,
  mergeComponent,
  type Component,
  type ComponentState,
  type ComponentValue,
  type MergeKind,
  type Moments,
  mergeMoments,
} from './aggregations.js';
import type { CompiledFeatureGroup } from './definition.js';
import { tileStart, windowFirstTile } from './tiles.js';

export const NEWEST_EVENT_FIELD = '_ts';

export interface FieldUpdate {
  field: string;
  merge: MergeKind;
  /** Numbers for add/min/max; for `last` the encoded `<time>|<value>`; for moments `<n>|<mean>|<m2>`. */
  value: number | string;
}

export interface EntityEvent {
  time: number;
  values: Record<string, unknown>;
}

export function encodeLast(time: number, value: number | string): string {
  return `${time}|${typeof value === 'number' ? 'n' : 's'}${value}`;
}

export function encodeMoments(m: Moments): string {
  return `${m.n}|${m.mean}|${m.m2}`;
}

export function decodeMoments(text: string): Moments {
  const [n, mean, m2] = text.split('|').map(Number) as [number, number, number];
  return { n, mean, m2 };
}

export function decodeLast(text: string): { time: number; value: number | string } {
  const bar = text.indexOf('|');
  const time = Number(text.slice(0, bar));
  const kind = text[bar + 1];
  const raw = text.slice(bar + 2);
  return { time, value: kind === 'n' ? Number(raw) : raw };
}

function columnValue(event: EntityEvent, column: string): number | string | null {
  if (column === '*') return 1;
  const value = event.values[column];
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string') return value;
  return null;
}

/** Pre-aggregates one entity's events into field updates (one per touched field). */
export function aggregateEvents(group: CompiledFeatureGroup, events: EntityEvent[]): FieldUpdate[] {
  const merged = new Map<string, { component: Component; value: ComponentValue }>();
  for (const event of events) {
    for (const [tileMs, columns] of group.tiles) {
      const start = tileStart(event.time, tileMs);
      for (const [column, components] of columns) {
        const value = columnValue(event, column);
        if (value === null) continue;
        for (const component of components) {
          // Only `count` and `last` take non-numeric values.
          if (component !== 'lv' && component !== 'n' && typeof value !== 'number') continue;
          const field = `${tileMs}:${start}:${column}:${component}`;
          const delta = componentDelta(component, value, event.time);
          const current = merged.get(field);
          merged.set(field, { component, value: mergeComponent(component, current?.value, delta) });
        }
      }
    }
  }
  const updates: FieldUpdate[] = [];
  for (const [field, { component, value }] of merged) {
    const merge = COMPONENT_MERGE[component];
    updates.push({ field, merge, value: encodeComponent(merge, value) });
  }
  return updates;
}

function encodeComponent(merge: MergeKind, value: ComponentValue): number | string {
  if (merge === 'last') {
    const last = value as { time: number; value: number | string };
    return encodeLast(last.time, last.value);
  }
  if (merge === 'moments') return encodeMoments(value as Moments);
  return value as number;
}

function decodeComponent(component: Component, raw: string): ComponentValue {
  if (component === 'lv') return decodeLast(raw);
  if (component === 'mv') return decodeMoments(raw);
  return Number(raw);
}

/** Applies field updates to a plain field map: the in-memory store's merge, and the reference for the Redis script. */
export function applyFieldUpdates(fields: Map<string, string>, updates: FieldUpdate[]): void {
  for (const { field, merge, value } of updates) {
    const current = fields.get(field);
    if (current === undefined) {
      fields.set(field, String(value));
      continue;
    }
    switch (merge) {
      case 'add':
        fields.set(field, String(Number(current) + (value as number)));
        break;
      case 'min':
        if ((value as number) < Number(current)) fields.set(field, String(value));
        break;
      case 'max':
        if ((value as number) > Number(current)) fields.set(field, String(value));
        break;
      case 'last':
        if (decodeLast(value as string).time >= decodeLast(current).time) fields.set(field, value as string);
        break;
      case 'moments':
        fields.set(field, encodeMoments(mergeMoments(decodeMoments(current), decodeMoments(value as string))));
        break;
    }
  }
}

/** Fields of tiles that no window read at or after `nowMs` can include. */
export function isExpiredTileField(field: string, group: CompiledFeatureGroup, nowMs: number): boolean {
  if (field.startsWith('_')) return false;
  const [tileText, startText] = field.split(':', 2);
  const tileMs = Number(tileText);
  return Number(startText) < windowFirstTile(nowMs, group.maxWindowMs, tileMs);
}

export interface FeatureValues {
  values: Record<string, number | string | null>;
  /** Event time of the newest event applied, or null when the entity has no state. */
  newestEventTime: number | null;
}

/** Merges the tiles of every window as of `nowMs` and finalizes each feature. */
export function readFeatureValues(group: CompiledFeatureGroup, fields: Record<string, string> | null, nowMs: number): FeatureValues {
  const values: Record<string, number | string | null> = {};
  if (!fields || Object.keys(fields).length === 0) {
    for (const feature of group.features) values[feature.name] = null;
    return { values, newestEventTime: null };
  }
  const parsed: { tileMs: number; start: number; column: string; component: Component; raw: string }[] = [];
  for (const [field, raw] of Object.entries(fields)) {
    if (field.startsWith('_')) continue;
    const [tileText, startText, column, component] = field.split(':');
    parsed.push({ tileMs: Number(tileText), start: Number(startText), column: column!, component: component as Component, raw });
  }
  for (const feature of group.features) {
    const first = windowFirstTile(nowMs, feature.windowMs, feature.tileMs);
    const state: ComponentState = {};
    for (const entry of parsed) {
      if (entry.tileMs !== feature.tileMs || entry.column !== feature.column) continue;
      if (entry.start < first || entry.start > nowMs) continue;
      const value = decodeComponent(entry.component, entry.raw);
      state[entry.component] = mergeComponent(entry.component, state[entry.component], value);
    }
    values[feature.name] = finalize(feature.op, state);
  }
  const newest = fields[NEWEST_EVENT_FIELD];
  return { values, newestEventTime: newest === undefined ? null : Number(newest) };
}
