import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import TypeBox from 'typebox';
import { Compile, Type } from '../src/index.js';
import { typeboxBundlePath } from '../src/typebox.js';

describe('TypeBox in one module', () => {
  it("is bundled by the install's postinstall step, and that bundle is what the code loads", async () => {
    const bundle = typeboxBundlePath();
    expect(bundle, 'node_modules/.cache/tributary/typebox-<version>.mjs: run `node scripts/bundle-typebox.mjs`').not.toBeNull();
    const loaded = (await import(pathToFileURL(bundle!).href)) as { Type: unknown; Compile: unknown };
    expect(Type).toBe(loaded.Type);
    expect(Compile).toBe(loaded.Compile);
    expect(Type).not.toBe(TypeBox);
  });

  it('validates as TypeBox does, schemas of either copy alike', () => {
    const ours = Type.Object({
      amount: Type.Number({ minimum: 0 }),
      channel: Type.Optional(Type.Union([Type.Literal('web'), Type.Literal('app')])),
    });
    const theirs = TypeBox.Object({
      amount: TypeBox.Number({ minimum: 0 }),
      channel: TypeBox.Optional(TypeBox.Union([TypeBox.Literal('web'), TypeBox.Literal('app')])),
    });
    for (const schema of [ours, theirs]) {
      const check = Compile(schema);
      expect(check.Check({ amount: 1 })).toBe(true);
      expect(check.Check({ amount: 1, channel: 'app' })).toBe(true);
      expect(check.Check({ amount: -1 })).toBe(false);
      expect(check.Check({ amount: 1, channel: 'pos' })).toBe(false);
      expect([...check.Errors({ amount: '1' })].length).toBeGreaterThan(0);
    }
  });
});
