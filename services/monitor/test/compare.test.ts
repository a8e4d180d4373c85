import { describe, expect, it } from 'vitest';
import { compareSamples, COMPARE_DEFAULTS, type CompareOptions } from '../src/compare.js';
import { formatReport } from '../src/compare-format.js';
import { CompareInputError, parseSample } from '../src/compare-input.js';
import { float32Json } from '@tributary/shared';

const fields = { scoreField: 'score', labelField: 'label', sliceField: 'segment' };
const options: CompareOptions = { ...COMPARE_DEFAULTS, sliceField: 'segment' };
const ndjson = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

// Reference: x = 1..5, c = a a b b b, scores without labels.
const reference = await parseSample(
  ndjson([
    { x: 1, c: 'a', score: 0.2 },
    { x: 2, c: 'a', score: 0.3 },
    { x: 3, c: 'b', score: 0.5 },
    { x: 4, c: 'b', score: 0.6 },
    { x: 5, c: 'b', score: 0.9 },
  ]),
  'ref.ndjson',
  fields,
);
// Current: x = 3..8, c = a a a b b b, the hand-ranked AUC sample as scores and labels.
const current = await parseSample(
  ndjson([
    { x: 3, c: 'a', score: 0.1, label: 0, segment: 'S' },
    { x: 4, c: 'a', score: 0.35, label: 1, segment: 'S' },
    { x: 5, c: 'a', score: 0.4, label: 0, segment: 'T' },
    { x: 6, c: 'b', score: 0.4, label: 1, segment: 'T' },
    { x: 7, c: 'b', score: 0.7, label: 0, segment: 'T' },
    { x: 8, c: 'b', score: 0.8, label: 1, segment: 'S' },
  ]),
  'cur.ndjson',
  fields,
);

describe('compareSamples', () => {
  const report = compareSamples(reference, current, options);

  it('tests numeric features with the exact two-sample KS test', () => {
    // F_ref - F_cur at 2, 3, 4, 5: 0.4 - 0, 0.6 - 1/6, 0.8 - 2/6, 1 - 3/6 -> D = 0.5
    // p = Q(sqrt(5 * 6 / 11) * 0.5) = 0.502914033641129 (Kolmogorov series)
    const x = report.features.find((f) => f.name === 'x')!;
    expect(x.kind).toBe('numeric');
    expect(x.test.name).toBe('ks');
    expect(x.test.statistic).toBeCloseTo(0.5, 14);
    expect(Math.abs(x.test.pValue - 0.502914033641129)).toBeLessThan(1e-6);
    // Bonferroni over the two features x and c.
    expect(x.test.adjustedPValue).toBe(1);
    expect(x.drift).toBe(false);
  });

  it('tests categorical features with chi-square', async () => {
    // Ten times the counts of the samples above: reference a 20, b 30; current a 30, b 30.
    // scipy.stats.chi2_contingency([[20,30],[30,30]], correction=False) -> chi2 1.1, df 1, p 0.29426610430496
    const rows = (a: number, b: number) => ndjson([...Array<object>(a).fill({ c: 'a' }), ...Array<object>(b).fill({ c: 'b' })]);
    const tenfold = compareSamples(
      await parseSample(rows(20, 30), 'ref.ndjson', fields),
      await parseSample(rows(30, 30), 'cur.ndjson', fields),
      {
        ...options,
        sliceField: undefined,
      },
    );
    const c = tenfold.features.find((f) => f.name === 'c')!;
    expect(c.test).toMatchObject({ name: 'chi-square', df: 1 });
    expect(c.test.statistic).toBeCloseTo(1.1, 12);
    expect(Math.abs(c.test.pValue - 0.29426610430496)).toBeLessThan(1e-9);
    expect(tenfold.drifted).toEqual([]);
  });

  it('runs no chi-square test on samples too small for any category to be expected 5 times', () => {
    // Reference a 2, b 3; current a 3, b 3: expected counts in the reference 25/11 and 30/11, both
    // pooled into one column, so there is nothing to compare: statistic 0, df 0, p = 1.
    const c = report.features.find((f) => f.name === 'c')!;
    expect(c.test).toMatchObject({ name: 'chi-square', statistic: 0, df: 0, pValue: 1, adjustedPValue: 1 });
    expect(c.drift).toBe(false);
  });

  it('reports the score drift apart from the features', () => {
    expect(report.features.map((f) => f.name)).toEqual(['x', 'c']);
    expect(report.score?.test.name).toBe('ks');
    expect(report.tested).toBe(2);
    expect(report.untested).toEqual([]);
  });

  it("bins the score as a model's profile does, with edges at the threshold and upper quantiles, so PSI sees a move out of the decision region", async () => {
    // A rare positive class: every decile edge below 0.0013; the 61 scores from 0.5 up move down to 0.05.
    const scores = [
      ...Array.from({ length: 2700 }, (_, i) => ((i + 1) / 2700) * 1.2e-3),
      ...Array.from({ length: 239 }, (_, i) => 0.002 + (i * 0.45) / 239),
      ...Array.from({ length: 61 }, (_, i) => 0.5 + (i * 0.49) / 61),
    ];
    const sample = (values: number[], file: string) => parseSample(ndjson(values.map((score, x) => ({ x, score }))), file, fields);
    const moved = compareSamples(
      await sample(scores, 'ref.ndjson'),
      await sample(
        scores.map((score) => (score >= 0.5 ? 0.05 : score)),
        'cur.ndjson',
      ),
      { ...options, sliceField: undefined },
    );
    // On deciles alone both samples fill the same bins (PSI 0); the bins of [0.5, 1) empty now.
    expect(moved.score!.psi).toBeGreaterThan(0.09);
    expect(moved.score!.jensenShannon).toBeGreaterThan(0.01);
    expect(moved.score!.test).toMatchObject({ name: 'ks', statistic: expect.closeTo(61 / 3000, 12) });
  });

  it("counts the features prediction-log records were served by default in each sample's missing rate, as the live monitor does", async () => {
    const log = (x: number, defaulted: string[]) => ({ features: { x, y: x }, defaulted, score: 0.5 });
    const before = await parseSample(ndjson([log(1, []), log(2, ['x']), log(3, []), log(4, [])]), 'before.ndjson', fields);
    const after = await parseSample(ndjson([log(1, ['x', 'y']), log(2, ['x', 'x']), log(3, []), log(4, ['z'])]), 'after.ndjson', fields);
    const rates = compareSamples(before, after, { ...options, sliceField: undefined }).features.map((f) => [f.name, f.missingRate]);
    expect(rates).toEqual([
      ['x', { reference: 1 / 4, current: 2 / 4 }],
      ['y', { reference: 0, current: 1 / 4 }],
    ]);
    await expect(parseSample(ndjson([{ features: { x: 1 }, defaulted: 'x' }]), 'odd.ndjson', fields)).rejects.toThrow(
      /odd.ndjson:1: defaulted is "x", expected an array of feature names/,
    );
  });

  it('names a feature without any value in the current sample as untested, outside the correction, never as ok', async () => {
    const gone = await parseSample(ndjson([{ c: 'a' }, { c: 'b' }, { c: 'b' }]), 'gone.ndjson', fields);
    const without = compareSamples(reference, gone, { ...options, sliceField: undefined });
    expect(without.untested).toEqual(['x']);
    expect(without.tested).toBe(1);
    const x = without.features.find((f) => f.name === 'x')!;
    expect(x.missingRate.current).toBe(1);
    expect(x.drift).toBe(false);
    const text = formatReport(without);
    expect(text).toMatch(/^x\s+numeric\s+5\s+0 .* untested$/m);
    expect(text).toMatch(/Bonferroni over 1 features/);
    expect(text).toMatch(/^untested \(no value in the reference or the current sample\): x$/m);

    // Nothing tested at all: said so, not "none".
    const onlyX = compareSamples(reference, gone, { ...options, sliceField: undefined, features: ['x'] });
    expect(formatReport(onlyX)).toMatch(/^drift: not tested: no feature has values in both samples /m);
  });

  it('computes quality where labels exist and a CBPE estimate from the scores', () => {
    expect(report.quality.reference).toBeNull();
    const q = report.quality.current!;
    // threshold 0.5: 0.8/1 tp, 0.7/0 fp, 0.1/0 and 0.4/0 tn, 0.35/1 and 0.4/1 fn
    expect(q.confusion).toEqual({ tp: 1, fp: 1, tn: 2, fn: 2 });
    expect(q.accuracy).toBe(0.5);
    expect(q.rocAuc).toBeCloseTo(5.5 / 9, 14);
    // CBPE without reference labels takes the scores as calibrated:
    // E[tp] = 0.7 + 0.8, E[fp] = 0.3 + 0.2, E[tn] = 0.9 + 0.65 + 0.6 + 0.6 -> accuracy (1.5 + 2.75) / 6
    expect(report.estimated).toMatchObject({ estimated: true, calibrated: false, count: 6 });
    expect(report.estimated!.accuracy).toBeCloseTo(4.25 / 6, 14);
  });

  it('compares false-positive and false-negative rates across slices', () => {
    // S: scores 0.1/0 tn, 0.35/1 fn, 0.8/1 tp -> fpr 0, fnr 1/2; T: 0.4/0 tn, 0.4/1 fn, 0.7/0 fp -> fpr 1/2, fnr 1
    const small = compareSamples(reference, current, { ...options, minSliceCount: 1 });
    expect(small.fairness!.falsePositiveRate).toMatchObject({ difference: 0.5, ratio: Infinity });
    expect(small.fairness!.falseNegativeRate).toMatchObject({ difference: 0.5, ratio: 2 });
  });

  it('leaves the records without a slice out of the disparity, as the live monitor leaves its catch-all slices', async () => {
    // S and T as above; records without a segment, all false positives, would be a slice of fpr 1.
    const unsliced = await parseSample(
      ndjson([
        ...[0.1, 0.35, 0.8, 0.4, 0.4, 0.7].map((score, i) => ({ x: i, score, label: [0, 1, 1, 0, 1, 0][i], segment: i < 3 ? 'S' : 'T' })),
        { x: 9, score: 0.9, label: 0 },
        { x: 9, score: 0.9, label: 0 },
      ]),
      'cur.ndjson',
      fields,
    );
    const fair = compareSamples(reference, unsliced, { ...options, minSliceCount: 1 }).fairness!;
    expect(fair.falsePositiveRate).toMatchObject({ difference: 0.5 });
    expect(Object.keys(fair.falsePositiveRate.slices).sort()).toEqual(['S', 'T']);
  });

  it('leaves out of the disparity, by default, the rates of slices with fewer than 30 negatives or positives, and says so', () => {
    expect(report.fairness).toMatchObject({ field: 'segment', minCount: 30 });
    expect(report.fairness!.falsePositiveRate).toMatchObject({ slices: {}, min: null, max: null });
    expect(report.fairness!.falseNegativeRate).toMatchObject({ slices: {}, min: null, max: null });
    expect(formatReport(report)).toMatch(
      /^slices by segment \(false-positive rate of the slices with 30\+ negatives, false-negative rate of those with 30\+ positives\)$/m,
    );
  });

  it('renders a table', () => {
    const text = formatReport(report);
    expect(text).toMatch(/^x\s+numeric\s+5\s+6/m);
    expect(text).toMatch(/^c\s+categorical\s+5\s+6\s.*chi-square\(0\)\s+0\s+1\s+1\s+ok$/m);
    expect(text).toMatch(/current \(estimated, CBPE\)/);
    expect(text).toMatch(/drift: none/);
  });

  it('rejects a feature absent from the reference', () => {
    expect(() => compareSamples(reference, current, { ...options, features: ['nope'] })).toThrow(/ref.ndjson: feature "nope"/);
  });
});

describe('parseSample', () => {
  it('flattens prediction-log records: request fields, then features, then the score', async () => {
    const sample = await parseSample(
      ndjson([
        {
          prediction_id: 'p1',
          request: { merchant_category: 'travel', amount: 'ignored' },
          features: { amount: 12.5, hour: 3 },
          score: 0.25,
          label: true,
        },
      ]),
      'log.ndjson',
      fields,
    );
    expect(sample.featureNames).toEqual(['amount', 'hour']);
    expect(sample.rows[0]).toMatchObject({ merchant_category: 'travel', amount: 12.5, hour: 3, score: 0.25 });
    expect(sample.scores).toEqual([0.25]);
    expect(sample.labels).toEqual([1]);
  });

  it("reads a prediction-log record's features and score as the float32 values the model read and gave", async () => {
    // Training rows hold the float32 values as doubles (17 digits); the service logs them with 9 (41.3699989, just below).
    const values = [41.37, 41.37, 41.37, 50.1, 60.3, 70.7].map(Math.fround);
    const training = await parseSample(ndjson(values.map((x) => ({ x, score: Math.fround(0.3) }))), 'training.ndjson', fields);
    const logged = values.map((x) => `{"features":{"x":${float32Json(x)}},"score":${float32Json(Math.fround(0.3))}}`).join('\n') + '\n';
    expect(logged).toContain('"x":41.3699989}');
    const served = await parseSample(logged, 'served.ndjson', fields);
    expect(served.rows.map((r) => r.x)).toEqual(values);
    expect(served.scores).toEqual(values.map(() => Math.fround(0.3)));
    const x = compareSamples(training, served, { ...options, sliceField: undefined }).features.find((f) => f.name === 'x')!;
    expect(x.test.statistic).toBe(0);
    expect(x.psi).toBe(0);
  });

  it('reads a file in chunks split anywhere as it reads it whole, line numbers included', async () => {
    const text = ndjson([
      { x: 1, score: 0.25 },
      { x: 2, c: 'é' },
      { x: 3, label: 1 },
    ]);
    const inChunks = (whole: string, size: number) =>
      (async function* () {
        for (let i = 0; i < whole.length; i += size) yield whole.slice(i, i + size);
      })();
    const whole = await parseSample(text, 'f.ndjson', fields);
    expect(whole.rows).toHaveLength(3);
    for (const size of [1, 5, 7]) expect(await parseSample(inChunks(text, size), 'f.ndjson', fields)).toEqual(whole);
    await expect(parseSample(inChunks(`${text}\n\n{"x":`, 5), 'f.ndjson', fields)).rejects.toThrow(/^f.ndjson:6: not valid JSON/);
  });

  it('names the file and line of malformed input', async () => {
    const bad = (text: string) => expect(parseSample(text, 'f.ndjson', fields)).rejects;
    await bad('{"x":1}\n\n{"x":\n').toThrow(new RegExp('^f.ndjson:3: not valid JSON'));
    await bad('[1]\n').toThrow(/f.ndjson:1: expected a JSON object, got an array/);
    await bad('{"x":1,"score":1.5}\n').toThrow(/f.ndjson:1: score is 1.5, expected a probability/);
    // A prediction-log record's score and features are read as float32: one out of range is told as the file writes it.
    await bad('{"features":{"x":1},"score":1.0000001}\n').toThrow(/^f.ndjson:1: score is 1.0000001, expected a probability/);
    const amount = parseSample('{"features":{"amount":25.507},"request":{"amount":0.5}}\n', 'f.ndjson', {
      ...fields,
      scoreField: 'amount',
    });
    await expect(amount).rejects.toThrow(/^f.ndjson:1: amount is 25.507, expected a probability/);
    await bad('{"x":1,"label":"yes"}\n').toThrow(/f.ndjson:1: label is "yes"/);
    await bad('{"features":{"a":"x"}}\n').toThrow(/f.ndjson:1: features.a is "x"/);
    await bad('\n\n').toThrow(/f.ndjson: no records/);
    await bad('{"x":\n').toThrow(CompareInputError);
  });
});
