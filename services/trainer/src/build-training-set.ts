/**
 * The two ways to build a training set, and its two output forms:
 *
 * - from the prediction log joined with labels: the feature values exactly as served;
 * - from the backfill: every transaction of an event log, with the features it would have
 *   been served (point in time, assembled by the serving code), joined with labels.
 *
 * Both apply the same label policy (cut-off, maturity, unlabelled) and the same time split:
 * train on the rows before the split time, validate on the most recent ones.
 */
import { eventReplay } from '@tributary/features';
import type { CompiledFeatureGroup, EventSource, FeatureCatalog, ModelFeatureList } from '@tributary/shared';
import { compareEncodings } from './encodings.js';
import { planModelFeatures, type FeatureDefault, type FeatureTypeSpec } from '@tributary/shared';
import type { TSchema } from 'typebox';
import { eventCandidates, type EventStats } from './event-rows.js';
import type { LogInput } from './log-input.js';
import { assembleVectors, backfillStates, replaySources, type ReplaySummary } from './point-in-time.js';
import { servedCandidates, type ServedStats } from './served-rows.js';
import {
  joinLabels,
  labelsAsOf,
  splitByTime,
  splitTime,
  type JoinStats,
  type LabelPolicy,
  type Labelled,
  type RejectedRecord,
  type SplitSpec,
} from './training-set.js';

export const TRAINING_SET_FORMAT = 'tributary.training-set/1';
/** Backfill rows whose vectors are assembled at once (their stored state held meanwhile). */
const ROWS_PER_PART = 4096;

/** A training set as one JSON document: aligned arrays in time order, the first `split.train` rows train. */
export interface TrainingSet {
  format: typeof TRAINING_SET_FORMAT;
  source: 'prediction_log' | 'backfill';
  /** The model the rows were built for, with the types and defaults its values are encoded by (absent in older sets: numbers). */
  model: Pick<ModelFeatures, 'name' | 'version' | 'defaults' | 'feature_types'>;
  features: string[];
  /** Epoch ms. */
  cutoff: number;
  label_policy: { unlabelled: LabelPolicy['unlabelled']; maturity_ms: number };
  /** Rows before `at` (epoch ms) train, the rest validate; `at` is null when there are no rows. */
  split: { at: number | null; train: number; validation: number };
  request_ids: string[];
  times: number[];
  labels: (0 | 1)[];
  label_sources: ('label' | 'matured')[];
  rows: number[][];
  stats: {
    join: JoinStats;
    labels_rejected: number;
    records_rejected: number;
    served?: ServedStats;
    events?: EventStats;
    replay?: ReplaySummary[];
  };
}

export interface ModelFeatures {
  name: string;
  version: string;
  features: string[];
  defaults?: Record<string, FeatureDefault>;
  /** The model's declared feature types (its manifest's `feature_types`): the rows hold the values as they encode them. */
  feature_types?: Record<string, FeatureTypeSpec>;
}

interface Common {
  labels: LogInput;
  model: ModelFeatures;
  policy: LabelPolicy;
  split: SplitSpec;
}

export interface Built {
  set: TrainingSet;
  /** Records set aside (not prediction-log records, events or labels the schema accepts). */
  rejected: RejectedRecord[];
  /** Label records read, decoded or set aside. */
  labelRecords: number;
}

function assemble(
  source: TrainingSet['source'],
  common: Common,
  rows: Labelled<{ request_id: string; time: number; features: number[] }>[],
  stats: TrainingSet['stats'],
): TrainingSet {
  const at = rows.length === 0 ? null : splitTime(rows, common.split);
  const { train } = splitByTime(rows, at ?? Number.POSITIVE_INFINITY);
  return {
    format: TRAINING_SET_FORMAT,
    source,
    model: {
      name: common.model.name,
      version: common.model.version,
      ...(common.model.defaults === undefined ? {} : { defaults: common.model.defaults }),
      ...(common.model.feature_types === undefined ? {} : { feature_types: common.model.feature_types }),
    },
    features: common.model.features,
    cutoff: common.policy.cutoff,
    label_policy: { unlabelled: common.policy.unlabelled, maturity_ms: common.policy.maturityMs },
    split: { at, train: train.length, validation: rows.length - train.length },
    request_ids: rows.map((r) => r.request_id),
    times: rows.map((r) => r.time),
    labels: rows.map((r) => r.label),
    label_sources: rows.map((r) => r.label_source),
    rows: rows.map((r) => r.features),
    stats,
  };
}

export interface FromPredictionLogOptions extends Common {
  predictions: LogInput;
  variant: string | 'all';
  versions?: string[];
  /**
   * The manifests of the served versions (the registry's), to take each version's values as the
   * model encodes them: a version with other defaults has its defaulted values replaced by the
   * model's, one with other types (or not known) is left out, one whose category vocabulary
   * differs is refused. Absent: every version's values are taken as logged.
   */
  servedVersions?: { catalog: FeatureCatalog; manifestOf: (version: string) => ModelFeatureList | null };
}

/**
 * Each input is read in one pass, as a stream; what is kept until the join is the candidates
 * and the label that counts of each request id, parsed: the rows are put in time order, so all
 * of them are needed.
 */
export async function trainingSetFromPredictionLog(options: FromPredictionLogOptions): Promise<Built> {
  const { model, servedVersions } = options;
  const served = await servedCandidates(options.predictions, {
    model: model.name,
    features: model.features,
    versions: options.versions,
    variant: options.variant,
    encodingOf: servedVersions
      ? (version) => {
          const manifest = servedVersions.manifestOf(version) ?? (version === model.version ? model : null);
          return compareEncodings(model, manifest && { ...manifest, version }, servedVersions.catalog);
        }
      : undefined,
  });
  const labels = await labelsAsOf(options.labels, options.policy.cutoff);
  const joined = joinLabels(served.candidates, labels, options.policy);
  const set = assemble('prediction_log', options, joined.rows, {
    join: joined.stats,
    labels_rejected: labels.rejected.length,
    records_rejected: served.rejected.length,
    served: served.stats,
  });
  return { set, rejected: [...served.rejected, ...labels.rejected], labelRecords: labels.records };
}

export interface FromBackfillOptions extends Common {
  /** The events of each source the model's features read, by source name. */
  events: Map<string, LogInput>;
  /** The source whose events are the scored transactions (one row each). */
  rowsSource: string;
  sources: (EventSource & { schema: TSchema })[];
  groups: CompiledFeatureGroup[];
  catalog: FeatureCatalog;
  requestFields: string[];
  allowedLatenessMs: number;
  /**
   * When the events were read, for the records without a log timestamp (an events file's): an
   * event more than an hour after it is invalid, as online one that far ahead of its record's
   * timestamp is (it would move its partition's watermark and make every later event late).
   */
  readAt?: number;
}

/**
 * Each input is read in one pass, as a stream, the rows source's once for both its candidates
 * and its replay. What is kept: the candidates and the label that counts of each request id,
 * parsed, until the join, each source's accepted events, parsed, until the point-in-time reads
 * (swept in time order), and the stored state read for a part of the rows at a time.
 */
export async function trainingSetFromBackfill(options: FromBackfillOptions): Promise<Built> {
  const plan = planModelFeatures(options.model, options.catalog);
  const source = options.sources.find((s) => s.name === options.rowsSource);
  const rowsInput = options.events.get(options.rowsSource);
  if (!source || !rowsInput) throw new RangeError(`no events of the source "${options.rowsSource}", whose events are the rows`);
  const replayOptions = { allowedLatenessMs: options.allowedLatenessMs, readAt: options.readAt };
  const rowsReplay = eventReplay({ source, ...replayOptions });
  const events = await eventCandidates(rowsInput, rowsReplay, {
    entityFields: [...new Set(options.groups.flatMap((g) => g.entityFields))],
    requestFields: options.requestFields,
  });
  const others = new Map([...options.events].filter(([name]) => name !== options.rowsSource));
  const replays = await replaySources(others, { sources: options.sources, ...replayOptions });
  replays.set(options.rowsSource, rowsReplay);
  const labels = await labelsAsOf(options.labels, options.policy.cutoff);
  // Only the rows the policy keeps are backfilled.
  const joined = joinLabels(events.candidates, labels, options.policy);
  const states = backfillStates(replays, options.groups);
  // The vectors a part of the rows at a time, in time order (one sweep of the events for all the
  // parts): the stored state read for a row is let go once its vector is assembled.
  const rows: Labelled<{ request_id: string; time: number; features: number[] }>[] = [];
  let from = 0;
  do {
    const part = joined.rows.slice(from, from + ROWS_PER_PART);
    const vectors = await assembleVectors(
      plan,
      states,
      part.map((row) => ({ entities: row.entities, request: row.request, at: row.time })),
    );
    part.forEach((row, i) =>
      rows.push({
        request_id: row.request_id,
        time: row.time,
        label: row.label,
        label_source: row.label_source,
        features: Array.from(vectors[i]!.vector),
      }),
    );
    from += ROWS_PER_PART;
  } while (from < joined.rows.length);
  const set = assemble('backfill', options, rows, {
    join: joined.stats,
    labels_rejected: labels.rejected.length,
    records_rejected: events.rejected.length,
    events: events.stats,
    replay: states.summaries,
  });
  return { set, rejected: [...events.rejected, ...labels.rejected], labelRecords: labels.records };
}

/** One JSON line per row: `{set, request_id, time, label, label_source, features: {name: value}}`. */
export function* trainingSetNdjson(set: TrainingSet): Generator<string> {
  for (let i = 0; i < set.rows.length; i++) {
    const row = set.rows[i]!;
    yield `${JSON.stringify({
      set: i < set.split.train ? 'train' : 'validation',
      request_id: set.request_ids[i],
      time: set.times[i],
      label: set.labels[i],
      label_source: set.label_sources[i],
      features: Object.fromEntries(set.features.map((name, f) => [name, row[f]])),
    })}\n`;
  }
}

/** The train and validation parts of a training set, ready for a trainer. */
export function trainingSetParts(set: TrainingSet) {
  const part = (from: number, to: number) => ({
    rows: set.rows.slice(from, to).map((row) => Float32Array.from(row)),
    labels: set.labels.slice(from, to),
    times: set.times.slice(from, to),
  });
  return { features: set.features, train: part(0, set.split.train), validation: part(set.split.train, set.rows.length) };
}
