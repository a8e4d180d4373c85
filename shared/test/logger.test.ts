import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { createLogger } from '../src/logger.js';

describe('createLogger', () => {
  it("takes pino's levels in any case", () => {
    expect(createLogger('test', 'DEBUG').level).toBe('debug');
    expect(createLogger('test', 'silent').level).toBe('silent');
  });

  it('refuses a level pino does not know as an invalid LOG_LEVEL, not with a stack trace from pino', () => {
    expect(() => createLogger('test', 'verbose')).toThrow(ConfigError);
    expect(() => createLogger('test', 'verbose')).toThrow(
      'invalid configuration:\n  LOG_LEVEL="verbose": must be one of fatal, error, warn, info, debug, trace, silent',
    );
  });
});
