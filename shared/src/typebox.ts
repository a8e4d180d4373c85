/**
 * TypeBox's `Type` and `Compile`, from the one-module bundle that scripts/bundle-typebox.mjs
 * makes at install (loading TypeBox's ~680 modules under tsx took ~0.9 s of every process
 * start), or from TypeBox itself when the bundle is missing. Import them from here; types
 * (`Static`, `TSchema`, ...) come from 'typebox' as before, since they cost nothing at run time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type TypeBox from 'typebox';
import type { Compile as TypeBoxCompile } from 'typebox/compile';

interface Loaded {
  Type: typeof TypeBox;
  Compile: typeof TypeBoxCompile;
}

/** Where scripts/bundle-typebox.mjs writes the bundle of the installed TypeBox (null: not there). */
export function typeboxBundlePath(): string | null {
  try {
    // node_modules/typebox/build/index.mjs -> node_modules/typebox
    const packageDir = dirname(dirname(createRequire(import.meta.url).resolve('typebox')));
    const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
    const path = join(dirname(packageDir), '.cache', 'tributary', `typebox-${version}.mjs`);
    return existsSync(path) ? path : null;
  } catch {
    return null;
  }
}

async function load(): Promise<Loaded> {
  const bundle = typeboxBundlePath();
  if (bundle) return (await import(pathToFileURL(bundle).href)) as Loaded;
  const [typebox, compile] = await Promise.all([import('typebox'), import('typebox/compile')]);
  return { Type: typebox.default, Compile: compile.Compile };
}

const loaded = await load();

export const Type = loaded.Type;
export const Compile = loaded.Compile;
