import { describe, expect, it } from 'vitest';
import { parseCommandOptions, UsageError } from '../src/errors.js';

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
