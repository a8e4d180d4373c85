/**
 * A training set as of a cut-off time, from candidates (predictions or transactions, each
 * with a request id and a time) and the labels that arrived later. Pure functions.
 *
 * - A label counts from when it arrived: the later of its `ts` and, when it was read from
 *   Kafka, its record's log timestamp (it cannot have been used before either). Labels that
 *   arrived after the cut-off are not used: that is what prevents leakage from the future.
 *   When several labels for one request arrived by the cut-off, the last to arrive wins (a
 *   correction); ties go to the later record (in partition order: a later partition's, or the
 *   later of one partition).
 * - Candidates after the cut-off did not exist yet and are left out.
 * - Maturity: a candidate younger than `maturityMs` at the cut-off is left out, labelled or
 *   not (keeping only its early labels would over-represent the labels that come fast).
 * - An older candidate without a label is dropped (`unlabelled: 'drop'`) or taken as a
 *   negative (`'negative'`: a chargeback not in by then is assumed never to come).
 */
import { LabelSchema, MAX_EVENT_TIME, parseEventTime, recordValidator, type Label } from '@tributary/shared';
import { byPartition, where, type LogInput } from './log-input.js';

export interface LabelEvent {
  request_id: string;
  label: 0 | 1;
  /** When the label became known, epoch ms. */
  arrivedAt: number;
  /** The partition of its record: of two labels that arrived at the same time, the later record (in partition order) wins. */
  partition: number;
}

export interface RejectedRecord {
  where: string;
  detail: string;
}

const labelValidator = recordValidator<Label>(LabelSchema);

/** The labels of an input as of a cut-off: what is kept of them to join. */
export interface LabelsAsOf {
  /** By request id, the label that counts: the last to arrive by the cut-off. */
  latest: Map<string, LabelEvent>;
  /** Label records read, decoded or set aside. */
  records: number;
  /** Labels that arrived after the cut-off (not used), and labels replaced by a later one. */
  afterCutoff: number;
  superseded: number;
  /** Records that are not labels, with the reason, in partition order. */
  rejected: RejectedRecord[];
}

/**
 * The labels of an input (read in one pass) that count as of the cut-off: only the last to
 * arrive by then for each request id is kept; records that are not labels are set aside with
 * the reason.
 */
export async function labelsAsOf(input: LogInput, cutoff: number): Promise<LabelsAsOf> {
  const latest = new Map<string, LabelEvent>();
  const rejected: { partition: number; item: RejectedRecord }[] = [];
  let records = 0;
  let afterCutoff = 0;
  let superseded = 0;
  for await (const record of input.records) {
    records++;
    const decoded = labelValidator.decode(record.value);
    if (!decoded.ok) {
      rejected.push({ partition: record.partition, item: { where: where(input, record), detail: decoded.detail } });
      continue;
    }
    const ts = parseEventTime(decoded.value.ts);
    if (ts === null) {
      const detail = `ts: not a valid time (epoch ms from 0 to ${MAX_EVENT_TIME}, or an RFC 3339 date-time with a zone)`;
      rejected.push({ partition: record.partition, item: { where: where(input, record), detail } });
      continue;
    }
    const logged = input.kind === 'topic' && Number.isFinite(record.timestamp) ? record.timestamp : 0;
    const label: LabelEvent = {
      request_id: decoded.value.request_id,
      label: decoded.value.label,
      arrivedAt: Math.max(ts, logged),
      partition: record.partition,
    };
    if (label.arrivedAt > cutoff) {
      afterCutoff++;
      continue;
    }
    // Each partition's records come in offset order: a label of a partition is later than those of its partition before it.
    const previous = latest.get(label.request_id);
    if (previous) superseded++;
    if (
      !previous ||
      label.arrivedAt > previous.arrivedAt ||
      (label.arrivedAt === previous.arrivedAt && label.partition >= previous.partition)
    )
      latest.set(label.request_id, label);
  }
  return { latest, records, afterCutoff, superseded, rejected: byPartition(rejected) };
}

export interface LabelPolicy {
  /** Epoch ms: only labels that arrived at or before it count; candidates after it are left out. */
  cutoff: number;
  /** What an old enough candidate without a label becomes. */
  unlabelled: 'drop' | 'negative';
  /** Candidates younger than this at the cut-off are left out (ms, 0 for none). */
  maturityMs: number;
}

export interface Candidate {
  request_id: string;
  /** When the prediction was made (or the transaction happened), epoch ms. */
  time: number;
}

export type Labelled<T extends Candidate> = T & { label: 0 | 1; label_source: 'label' | 'matured' };

export interface JoinStats {
  candidates: number;
  /** Rows labelled by a label, and taken as negative after the maturity window. */
  labelled: number;
  matured_negative: number;
  /** Candidates left out: after the cut-off, younger than the maturity window, without a label. */
  after_cutoff: number;
  immature: number;
  unlabelled_dropped: number;
  /** Labels: arrived after the cut-off (not used), replaced by a later one, for no candidate. */
  labels_after_cutoff: number;
  labels_superseded: number;
  labels_unmatched: number;
}

/** Joins candidates (one per request id) with the labels as of the policy's cut-off; rows in time order. */
export function joinLabels<T extends Candidate>(
  candidates: Iterable<T>,
  labels: Pick<LabelsAsOf, 'latest' | 'afterCutoff' | 'superseded'>,
  policy: LabelPolicy,
): { rows: Labelled<T>[]; stats: JoinStats } {
  const stats: JoinStats = {
    candidates: 0,
    labelled: 0,
    matured_negative: 0,
    after_cutoff: 0,
    immature: 0,
    unlabelled_dropped: 0,
    labels_after_cutoff: labels.afterCutoff,
    labels_superseded: labels.superseded,
    labels_unmatched: 0,
  };
  const { latest } = labels;
  const rows: Labelled<T>[] = [];
  const matched = new Set<string>();
  for (const candidate of candidates) {
    stats.candidates++;
    if (latest.has(candidate.request_id)) matched.add(candidate.request_id);
    if (candidate.time > policy.cutoff) {
      stats.after_cutoff++;
      continue;
    }
    if (policy.cutoff - candidate.time < policy.maturityMs) {
      stats.immature++;
      continue;
    }
    const label = latest.get(candidate.request_id);
    if (label) {
      stats.labelled++;
      rows.push({ ...candidate, label: label.label, label_source: 'label' });
    } else if (policy.unlabelled === 'negative') {
      stats.matured_negative++;
      rows.push({ ...candidate, label: 0, label_source: 'matured' });
    } else {
      stats.unlabelled_dropped++;
    }
  }
  stats.labels_unmatched = [...latest.keys()].filter((id) => !matched.has(id)).length;
  rows.sort((a, b) => a.time - b.time || (a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : 0));
  return { rows, stats };
}

export type SplitSpec = { at: number } | { validationFraction: number };

/**
 * The time of the split of rows in time order: given, or the time of the first row of the
 * most recent `validationFraction` (rows at that very time all go to validation).
 */
export function splitTime(rows: Candidate[], spec: SplitSpec): number {
  if ('at' in spec) return spec.at;
  if (!(spec.validationFraction > 0 && spec.validationFraction < 1)) throw new RangeError('the validation fraction must be in (0, 1)');
  if (rows.length === 0) return Number.POSITIVE_INFINITY;
  // To 12 digits first: 10 rows at 0.9 are 0.9999999999999998 train rows in doubles, 1 in fact.
  const index = Math.min(rows.length - 1, Math.floor(Number((rows.length * (1 - spec.validationFraction)).toPrecision(12))));
  return rows[index]!.time;
}

/** Rows before the split time train; rows at or after it validate. Rows must be in time order. */
export function splitByTime<T extends Candidate>(rows: T[], at: number): { train: T[]; validation: T[] } {
  let cut = rows.findIndex((row) => row.time >= at);
  if (cut < 0) cut = rows.length;
  return { train: rows.slice(0, cut), validation: rows.slice(cut) };
}
