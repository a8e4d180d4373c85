/**
 * What stops a training set before it is used (`npm run training-set` writes it, `npm run retrain`
 * trains on it): an input with no records, or none that could be read, is taken for the wrong
 * file or topic; a set with no training row is refused. Each throws an `InputError` (exit code 1).
 */
import type { Built, TrainingSet } from './build-training-set.js';
import { InputError, type LogInput } from './log-input.js';

/** The inputs a set was built from: the prediction log (log mode) or the rows source's events (backfill), and the labels. */
export interface SetInputs {
  labels: LogInput;
  predictions?: LogInput;
  events?: LogInput;
}

interface InputCount {
  what: string;
  input: LogInput;
  /** Records read, decoded or set aside. */
  total: number;
  /** Of those, set aside as unreadable. */
  bad: number;
  /** Where the input's first unreadable record is in `Built.rejected`. */
  first: number;
}

function counts(built: Built, inputs: SetInputs): InputCount[] {
  const { stats } = built.set;
  const read: InputCount[] = [];
  if (inputs.predictions)
    read.push({
      what: 'prediction-log',
      input: inputs.predictions,
      total: stats.served?.records ?? 0,
      bad: stats.records_rejected,
      first: 0,
    });
  if (inputs.events)
    read.push({ what: 'event', input: inputs.events, total: stats.events?.events ?? 0, bad: stats.records_rejected, first: 0 });
  read.push({ what: 'label', input: inputs.labels, total: built.labelRecords, bad: stats.labels_rejected, first: stats.records_rejected });
  return read;
}

/** An input with no record at all: an empty file, a topic misnamed or never written. */
export function refuseEmptyInputs(built: Built, inputs: SetInputs): void {
  for (const { what, input, total } of counts(built, inputs))
    if (total === 0) throw new InputError(`the ${what} ${input.kind} ${input.name} holds no records: taken for the wrong ${input.kind}`);
}

/** An input none of whose records could be read, named by its first. */
export function refuseUnreadableInputs(built: Built, inputs: SetInputs): void {
  for (const { what, total, bad, first } of counts(built, inputs)) {
    const example = built.rejected[first];
    if (total > 0 && bad === total && example)
      throw new InputError(`none of the ${total} ${what} records could be read (the first, ${example.where}: ${example.detail})`);
  }
}

/** A set with no row to train on: every row left out, or every one on the validation side. */
export function refuseNoTrainingRows(set: TrainingSet): void {
  if (set.split.train > 0) return;
  const j = set.stats.join;
  if (set.rows.length === 0)
    throw new InputError(
      `the training set has no rows: left out ${j.after_cutoff} after the cut-off, ${j.immature} younger than the maturity window, ` +
        `${j.unlabelled_dropped} without a label (${j.labels_after_cutoff} labels arrived after the cut-off, ${j.labels_unmatched} were for no row): ` +
        `check --cutoff and --maturity`,
    );
  throw new InputError(
    `the training set has no training rows: all ${set.rows.length} validate (from ${new Date(set.split.at!).toISOString()} on): ` +
      `check --validation-from or --validation-fraction`,
  );
}
