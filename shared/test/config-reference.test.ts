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

  it('states the range of every number, the range its value is refused outside of', () => {
    expect(configurationReference()).toContain(
      '| `MODEL_THREADS` | `1` | Worker threads running the model (onnxruntime) beside the event loop; as many spares (each with its copy of the model) start while runs past MODEL_RUN_TIMEOUT_MS hold them. From 1 to 64. |',
    );
    const ranged = Object.entries(VARIABLES).flatMap(([name, variable]) => {
      const range = /From (-?[\d.]+) to (-?[\d.]+)\.$/.exec(variable.description);
      return range ? [{ name, parse: (raw: string) => variable.parse(raw), min: Number(range[1]), max: Number(range[2]) }] : [];
    });
    expect(ranged.map((v) => v.name)).toEqual(
      expect.arrayContaining(['PORT', 'BODY_LIMIT_BYTES', 'TRACING_SAMPLE_RATIO', 'SIMULATOR_SEED']),
    );
    for (const { name, parse, min, max } of ranged) {
      expect([parse(String(min)), parse(String(max))], name).toEqual([min, max]);
      expect(() => parse(String(min - 1)), name).toThrow(/between/);
      expect(() => parse(String(max + 1)), name).toThrow(/between/);
    }
  });

  it('lists every variable', () => {
    const text = configurationReference();
    for (const name of Object.keys(VARIABLES)) expect(text).toContain(`| \`${name}\` |`);
  });
});
