import { describe, expect, it } from 'vitest';
import { auditTextProblem, parseCommandOptions, UsageError } from '../src/errors.js';

const options = { cutoff: { type: 'string' }, events: { type: 'string', multiple: true }, verbose: { type: 'boolean' } } as const;

describe('parseCommandOptions', () => {
  it('refuses an option of one value given twice, which parseArgs alone would take the last of', () => {
    for (const args of [
      ['--cutoff', 'a', '--cutoff', 'b'],
      ['--cutoff=a', '--cutoff', 'b'],
    ]) {
      expect(() => parseCommandOptions({ args, options })).toThrow(new UsageError('--cutoff is given twice'));
    }
  });

  it('takes options given once, and the repeatable ones as often as given', () => {
    const { values } = parseCommandOptions({ args: ['--cutoff', 'a', '--events', 'x', '--events', 'y', '--verbose'], options });
    expect(values).toEqual({ cutoff: 'a', events: ['x', 'y'], verbose: true });
  });
});

describe('auditTextProblem', () => {
  it('refuses what is too long or has a control character, and takes any other text', () => {
    expect(auditTextProblem('x'.repeat(1001))).toBe('is 1001 characters long; at most 1000');
    expect(auditTextProblem('abc', 2)).toBe('is 3 characters long; at most 2');
    for (const text of ['a\nb', 'a\rb', 'a\tb', 'a\u0000b', 'a\u007fb']) expect(auditTextProblem(text)).toMatch(/^has a control character/);
    for (const text of ['', 'retrained on the last week: AUC +0.004', 'é'.repeat(1000), '名前 ✓'])
      expect(auditTextProblem(text)).toBeNull();
  });
});
