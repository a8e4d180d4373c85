import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VARIABLES } from '../src/config.js';
import { configurationReference } from '../src/config-reference.js';

describe('configuration reference', () => {
  it('docs/configuration.md is the generated reference (run `npm run docs:config` after changing a variable)', () => {
    expect(readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')).toBe(configurationReference());
  });

  it("gives each service's own default where it differs", () => {
    expect(configurationReference()).toContain('| `PORT` | `3000` (features `3001`, monitor `3002`) |');
  });

  it('lists every variable', () => {
    const text = configurationReference();
    for (const name of Object.keys(VARIABLES)) expect(text).toContain(`| \`${name}\` |`);
  });
});
