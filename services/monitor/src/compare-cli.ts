/**
 * `npm run compare -w services/monitor -- --reference ref.ndjson --current cur.ndjson
 *   [--model name] [--version name] [--variant champion,canary,ab,bandit]
 *   [--features a,b] [--score-field score] [--label-field label] [--slice-field country]
 *   [--threshold 0.5] [--alpha 0.05] [--bins 10] [--format table|json]`
 * Exits 0 with the report (drift or not), 2 on bad arguments, 1 on unreadable or malformed input.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isBadOption, openTextFile, PREDICTION_VARIANTS, repeatedOption, sayStdoutFailure, UsageError } from '@tributary/shared';
import { COMPARE_DEFAULTS, compareSamples, type CompareOptions } from './compare.js';
import { formatReport } from './compare-format.js';
import { ANSWERING_VARIANTS, CompareInputError, parseSample, type RecordFilter, type Sample, type SampleFields } from './compare-input.js';

const USAGE =
  'usage: monitor compare --reference <file.ndjson> --current <file.ndjson> [--model name] [--version name] ' +
  `[--variant ${ANSWERING_VARIANTS.join(',')}] [--features a,b] [--score-field score] ` +
  '[--label-field label] [--slice-field field] [--threshold 0.5] [--alpha 0.05] [--bins 10] [--format table|json]';

const OPTIONS = {
  reference: { type: 'string' },
  current: { type: 'string' },
  model: { type: 'string' },
  version: { type: 'string' },
  variant: { type: 'string', default: ANSWERING_VARIANTS.join(',') },
  features: { type: 'string' },
  'score-field': { type: 'string' },
  'label-field': { type: 'string' },
  'slice-field': { type: 'string' },
  threshold: { type: 'string', default: String(COMPARE_DEFAULTS.threshold) },
  alpha: { type: 'string', default: String(COMPARE_DEFAULTS.alpha) },
  bins: { type: 'string', default: String(COMPARE_DEFAULTS.bins) },
  format: { type: 'string', default: 'table' },
} as const;

function parseOptions(argv: string[]): {
  reference: string;
  current: string;
  format: 'table' | 'json';
  filter: RecordFilter;
  options: CompareOptions;
  /** The record fields named on the command line (not defaults): each must be in some record. */
  named: ('score' | 'label' | 'slice')[];
} {
  const { values, tokens } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false, tokens: true });
  // Each flag takes one value: a second would silently replace the first.
  const twice = repeatedOption(tokens, OPTIONS);
  if (twice !== undefined) throw new UsageError(`--${twice} is given twice`);
  if (values.reference === undefined) throw new UsageError('--reference is required');
  if (values.current === undefined) throw new UsageError('--current is required');
  if (values.format !== 'table' && values.format !== 'json') throw new UsageError(`--format must be table or json, got "${values.format}"`);
  const number = (name: string, text: string, ok: (x: number) => boolean, what: string) => {
    const x = Number(text);
    if (text.trim() === '' || !ok(x)) throw new UsageError(`--${name} must be ${what}, got "${text}"`);
    return x;
  };
  // A list with an empty item (`,amount`) is a slip, not a shorter list.
  const list = (flag: string, text: string) => {
    const items = text.split(',').map((f) => f.trim());
    if (items.includes('') && items.some((f) => f !== '')) throw new UsageError(`--${flag}: an empty item in "${text}"`);
    return items.filter((f) => f !== '');
  };
  const features = values.features === undefined ? undefined : list('features', values.features);
  if (features?.length === 0) throw new UsageError('--features must list the features to compare (without it, all are)');
  const repeated = features?.find((f, i) => features.indexOf(f) !== i);
  if (repeated !== undefined) throw new UsageError(`--features lists "${repeated}" twice`);
  const variants = list('variant', values.variant);
  const unknown = variants.find((v) => !(PREDICTION_VARIANTS as readonly string[]).includes(v));
  if (unknown !== undefined || variants.length === 0) {
    throw new UsageError(`--variant must list variants among ${PREDICTION_VARIANTS.join(', ')}, got "${unknown ?? values.variant}"`);
  }
  const name = (flag: string, text: string) => {
    if (text.trim() === '') throw new UsageError(`--${flag} must not be empty`);
    return text;
  };
  // One field read as two things (a score that is the label) would give a meaningless report (an accuracy of 1).
  const fields = [
    ['score-field', name('score-field', values['score-field'] ?? COMPARE_DEFAULTS.scoreField)],
    ['label-field', name('label-field', values['label-field'] ?? COMPARE_DEFAULTS.labelField)],
    ...(values['slice-field'] === undefined ? [] : [['slice-field', name('slice-field', values['slice-field'])]]),
  ];
  for (const [i, [flag, field]] of fields.entries()) {
    const same = fields.slice(i + 1).find(([, other]) => other === field);
    if (same) throw new UsageError(`--${flag} and --${same[0]} both name "${field}": the score, label and slice fields must differ`);
  }
  return {
    reference: values.reference,
    current: values.current,
    format: values.format,
    filter: {
      ...(values.model === undefined ? {} : { model: name('model', values.model) }),
      ...(values.version === undefined ? {} : { version: name('version', values.version) }),
      variants,
    },
    named: [
      ...(values['score-field'] === undefined ? [] : ['score' as const]),
      ...(values['label-field'] === undefined ? [] : ['label' as const]),
      ...(values['slice-field'] === undefined ? [] : ['slice' as const]),
    ],
    options: {
      ...(features === undefined ? {} : { features }),
      scoreField: values['score-field'] ?? COMPARE_DEFAULTS.scoreField,
      labelField: values['label-field'] ?? COMPARE_DEFAULTS.labelField,
      ...(values['slice-field'] === undefined ? {} : { sliceField: values['slice-field'] }),
      threshold: number('threshold', values.threshold, (x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
      alpha: number('alpha', values.alpha, (x) => x > 0 && x < 1, 'a number in (0, 1)'),
      bins: number('bins', values.bins, (x) => Number.isInteger(x) && x >= 2 && x <= 1000, 'an integer in [2, 1000]'),
      maxCategories: COMPARE_DEFAULTS.maxCategories,
      maxSlices: COMPARE_DEFAULTS.maxSlices,
      minSliceCount: COMPARE_DEFAULTS.minSliceCount,
    },
  };
}

async function load(file: string, role: string, fields: SampleFields, filter: RecordFilter): Promise<Sample> {
  const cannotRead = (error: Error) => new CompareInputError(`cannot read the ${role} file ${file}: ${error.message}`);
  // `npm run -w` runs in the workspace folder; paths are relative to where npm was started.
  return parseSample(await openTextFile(resolve(process.env.INIT_CWD ?? process.cwd(), file), cannotRead), file, fields, filter);
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { reference, current, format, filter, options, named } = parseOptions(argv);
    const fields: SampleFields = {
      scoreField: options.scoreField,
      labelField: options.labelField,
      ...(options.sliceField ? { sliceField: options.sliceField } : {}),
    };
    const samples = [await load(reference, 'reference', fields, filter), await load(current, 'current', fields, filter)] as const;
    // A field named on the command line that no record holds is a typo, not a sample without scores.
    const values = { score: (x: Sample) => x.scores, label: (x: Sample) => x.labels, slice: (x: Sample) => x.slices };
    const flags = {
      score: ['--score-field', options.scoreField],
      label: ['--label-field', options.labelField],
      slice: ['--slice-field', options.sliceField],
    };
    for (const field of named) {
      if (samples.every((sample) => values[field](sample).every((v) => v === undefined))) {
        const [flag, name] = flags[field];
        throw new CompareInputError(`${flag} ${name}: no record of ${reference} or ${current} has a field of that name`);
      }
    }
    const report = compareSamples(samples[0], samples[1], options);
    process.stdout.write(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return 0;
  } catch (error) {
    if (isBadOption(error)) {
      process.stderr.write(`monitor compare: ${(error as Error).message}\n${USAGE}\n`);
      return 2;
    }
    if (error instanceof CompareInputError) {
      process.stderr.write(`monitor compare: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

sayStdoutFailure('monitor compare');
process.exitCode = await main(process.argv.slice(2));
