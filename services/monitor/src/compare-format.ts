/** Renders a compare report as a plain-text table (JSON output is the report itself). */
import type { CompareReport, SampleQuality } from './compare.js';

export function formatNumber(x: number | undefined | null): string {
  if (x === undefined || x === null || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x !== 0 && Math.abs(x) < 1e-4) return x.toExponential(2);
  return Number.isInteger(x) ? String(x) : x.toFixed(4);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function formatReport(report: CompareReport): string {
  const out: string[] = [];
  const sample = ({ file, rows, excluded }: CompareReport['reference']) =>
    `${file} (${rows} rows${excluded === 0 ? '' : `; ${excluded} records of other models, versions or variants left out`})`;
  out.push(`reference: ${sample(report.reference)}`);
  out.push(`current:   ${sample(report.current)}`);
  out.push('');
  const drift = [...report.features.map((f) => ({ ...f })), ...(report.score ? [{ name: '(score)', ...report.score }] : [])];
  out.push(
    table(
      ['feature', 'kind', 'n ref', 'n cur', 'missing ref', 'missing cur', 'PSI', 'JS', 'test', 'statistic', 'p', 'p adj', 'drift'],
      drift.map((f) => [
        f.name,
        f.kind,
        String(f.count.reference),
        String(f.count.current),
        formatNumber(f.missingRate.reference),
        formatNumber(f.missingRate.current),
        formatNumber(f.psi),
        formatNumber(f.jensenShannon),
        f.test.df === undefined ? f.test.name : `${f.test.name}(${f.test.df})`,
        formatNumber(f.test.statistic),
        formatNumber(f.test.pValue),
        formatNumber(f.test.adjustedPValue),
        f.drift ? 'DRIFT' : Number.isNaN(f.test.pValue) ? 'untested' : 'ok',
      ]),
    ),
  );
  out.push(
    `drift: ${report.tested === 0 ? 'not tested: no feature has values in both samples' : report.drifted.length === 0 ? 'none' : report.drifted.join(', ')} ` +
      `(alpha ${report.alpha}, Bonferroni over ${report.tested} features; the score is tested on its own)`,
  );
  if (report.untested.length > 0) out.push(`untested (no value in the reference or the current sample): ${report.untested.join(', ')}`);
  const { reference, current } = report.quality;
  if (reference || current || report.estimated) {
    const metrics = ['count', 'accuracy', 'precision', 'recall', 'f1', 'fpr', 'fnr', 'rocAuc', 'logLoss', 'ece'] as const;
    const cell = (q: SampleQuality | null, m: (typeof metrics)[number]) => formatNumber(q ? q[m] : undefined);
    const estimated = report.estimated;
    out.push('');
    out.push(`quality at threshold ${report.threshold}`);
    out.push(
      table(
        ['metric', 'reference', 'current', 'current (estimated, CBPE)'],
        metrics.map((m) => [
          m,
          cell(reference, m),
          cell(current, m),
          estimated && m !== 'logLoss' && m !== 'ece' ? formatNumber(estimated[m as keyof typeof estimated] as number) : '-',
        ]),
      ),
    );
    if (estimated) {
      out.push(
        `estimated: expected values from the scores${estimated.calibrated ? ' calibrated on the labelled reference' : ' taken as calibrated probabilities'}`,
      );
    }
  }
  if (report.fairness) {
    out.push('');
    const { field, minCount } = report.fairness;
    out.push(
      `slices by ${field} (false-positive rate of the slices with ${minCount}+ negatives, false-negative rate of those with ${minCount}+ positives)`,
    );
    out.push(
      table(
        ['rate', 'min', 'max', 'difference', 'ratio'],
        (
          [
            ['false positive', report.fairness.falsePositiveRate],
            ['false negative', report.fairness.falseNegativeRate],
          ] as const
        ).map(([label, d]) => [
          label,
          d.min ? `${d.min.slice} ${formatNumber(d.min.rate)}` : '-',
          d.max ? `${d.max.slice} ${formatNumber(d.max.rate)}` : '-',
          formatNumber(d.difference),
          formatNumber(d.ratio),
        ]),
      ),
    );
  }
  return out.join('\n');
}
