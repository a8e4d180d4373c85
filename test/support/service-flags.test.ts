import { describe, expect, it } from 'vitest';
import { serviceNodeFlags } from './service-flags.js';

describe('serviceNodeFlags', () => {
  it("reads the node flags of a service's start script", () => {
    expect(serviceNodeFlags('features')).toEqual(['--max-semi-space-size=64']);
    expect(serviceNodeFlags('monitor')).toEqual([]);
  });

  it('names a service whose start script is not the expected form', () => {
    expect(() => serviceNodeFlags('no-such-service')).toThrow(/no-such-service/);
  });
});
