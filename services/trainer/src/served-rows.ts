/**
 * Candidates from the prediction log: each record's feature vector exactly as served, in the
 * model's feature order, one per request id. The log is read in one pass; what is kept is
 * the candidates (parsed), not the records.
 */
import type { PredictionLogRecord } from '@tributary/shared';
import { recordValidator, servedFloats, Type } from '@tributary/shared';
import type { VersionEncoding } from './encodings.js';
import { byPartition, where, type LogInput } from './log-input.js';
import type { Candidate, RejectedRecord } from './training-set.js';

/** What a prediction-log record must hold to become a row (other fields are not looked at). */
const ServedRecordSchema = Type.Object({
  request_id: Type.String({ minLength: 1 }),
  model: Type.Object({ name: Type.String(), version: Type.String() }),
  variant: Type.String(),
  features: Type.Record(Type.String(), Type.Number()),
  defaulted: Type.Optional(Type.Array(Type.String())),
  predicted_at: Type.Integer({ minimum: 0 }),
});
type ServedRecord = Pick<PredictionLogRecord, 'request_id' | 'model' | 'variant' | 'features' | 'predicted_at'> & {
  defaulted?: string[];
};
const servedValidator = recordValidator<ServedRecord>(ServedRecordSchema);

export interface ServedSelection {
  /** The model whose predictions are taken, and the features wanted, in order. */
  model: string;
  features: string[];
  /** Only these versions (all when absent). */
  versions?: string[];
  /** Only this variant (`champion`, `canary`, ...), or every variant. */
  variant: string | 'all';
  /** How each served version encoded the wanted features against the target (absent: alike, as logged). */
  encodingOf?: (version: string) => VersionEncoding;
}

export interface ServedCandidate extends Candidate {
  features: number[];
  model: { name: string; version: string };
  variant: string;
}

export interface ServedStats {
  records: number;
  other_model: number;
  other_version: number;
  other_variant: number;
  /** Records of the model without every wanted feature (a version with other features). */
  missing_features: number;
  /** Records of a request id already taken (the earliest prediction is kept). */
  duplicates: number;
  /** Records of versions that encode a wanted feature with another type, or with another default and no `defaulted` list. */
  other_encoding: number;
  /** Records of versions whose manifest is not known (their encoding cannot be compared). */
  unknown_version: number;
  /** Values a version served as its default, replaced by the target's default (another default, the same type). */
  defaults_replaced: number;
  /** Why versions' records were left out, by version. */
  versions_left_out?: Record<string, string>;
}

/**
 * One candidate per request id: the earliest prediction of the selection (ties: the first in
 * partition order), its time the prediction's `predicted_at`. Records that are not
 * prediction-log records are set aside with the reason.
 */
export async function servedCandidates(
  input: LogInput,
  selection: ServedSelection,
): Promise<{ candidates: ServedCandidate[]; stats: ServedStats; rejected: RejectedRecord[] }> {
  const stats: ServedStats = {
    records: 0,
    other_model: 0,
    other_version: 0,
    other_variant: 0,
    missing_features: 0,
    duplicates: 0,
    other_encoding: 0,
    unknown_version: 0,
    defaults_replaced: 0,
  };
  const encodings = new Map<string, VersionEncoding>();
  // Why versions are left out, listed in the order of their first record in partition order (a record's
  // partition, then the order it was read in: each partition's records come in offset order).
  const leftOut = new Map<string, { why: string; partition: number; read: number }>();
  const leaveOut = (version: string, why: string, partition: number) => {
    const known = leftOut.get(version);
    if (!known || partition < known.partition) leftOut.set(version, { why, partition, read: stats.records });
  };
  const encodingOf = (version: string, partition: number): VersionEncoding => {
    let encoding = encodings.get(version);
    if (!encoding) {
      encoding = selection.encodingOf?.(version) ?? { kind: 'same' };
      encodings.set(version, encoding);
    }
    if (encoding.kind === 'other_types' || encoding.kind === 'unknown')
      leaveOut(version, encoding.kind === 'unknown' ? 'its manifest is not known' : encoding.detail, partition);
    return encoding;
  };
  const rejected: { partition: number; item: RejectedRecord }[] = [];
  const kept = new Map<string, ServedCandidate & { partition: number }>();
  for await (const record of input.records) {
    const { partition } = record;
    stats.records++;
    const decoded = servedValidator.decode(record.value);
    if (!decoded.ok) {
      rejected.push({ partition, item: { where: where(input, record), detail: decoded.detail } });
      continue;
    }
    const served = decoded.value;
    if (served.model.name !== selection.model) {
      stats.other_model++;
      continue;
    }
    if (selection.versions && !selection.versions.includes(served.model.version)) {
      stats.other_version++;
      continue;
    }
    if (selection.variant !== 'all' && served.variant !== selection.variant) {
      stats.other_variant++;
      continue;
    }
    // The float32 values the model read (the log writes them with 9 digits).
    const { features: floats } = servedFloats(served);
    const features = selection.features.map((name) => floats[name]);
    if (features.some((value) => value === undefined)) {
      stats.missing_features++;
      continue;
    }
    // The values as the target encodes them, or the record left out when they cannot be.
    const encoding = encodingOf(served.model.version, partition);
    if (encoding.kind === 'unknown') {
      stats.unknown_version++;
      continue;
    }
    if (encoding.kind === 'other_types' || (encoding.kind === 'other_defaults' && !served.defaulted)) {
      if (encoding.kind === 'other_defaults')
        leaveOut(served.model.version, 'other defaults, and records without their defaulted list', partition);
      stats.other_encoding++;
      continue;
    }
    if (encoding.kind === 'other_defaults') {
      for (const name of served.defaulted!) {
        const at = selection.features.indexOf(name);
        const target = encoding.defaults.get(name);
        if (at < 0 || target === undefined) continue;
        features[at] = Math.fround(target);
        stats.defaults_replaced++;
      }
    }
    const candidate = {
      request_id: served.request_id,
      time: served.predicted_at,
      features: features as number[],
      model: served.model,
      variant: served.variant,
      partition,
    };
    const previous = kept.get(served.request_id);
    if (previous) {
      stats.duplicates++;
      // Each partition's records come in offset order: a tie goes to an earlier partition's.
      if (previous.time < candidate.time || (previous.time === candidate.time && previous.partition <= partition)) continue;
    }
    kept.set(served.request_id, candidate);
  }
  if (leftOut.size > 0)
    stats.versions_left_out = Object.fromEntries(
      [...leftOut].sort(([, a], [, b]) => a.partition - b.partition || a.read - b.read).map(([version, { why }]) => [version, why]),
    );
  return { candidates: [...kept.values()], stats, rejected: byPartition(rejected) };
}
