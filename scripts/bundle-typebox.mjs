/**
 * Bundles TypeBox into one module (run by `npm install` and `npm ci`, as the root package's
 * postinstall; the Dockerfile runs it after its `npm ci --ignore-scripts`).
 *
 * TypeBox ships as about 680 small ES modules; under tsx's loader each one is resolved and
 * loaded through the loader's thread, which made loading TypeBox take about 0.9 s of every
 * process start (a service, a CLI, each test file's process). The bundle holds what the
 * project uses of it at run time (`Type` and `Compile`) and is written beside the package it
 * is made from, named with its version: node_modules/.cache/tributary/typebox-<version>.mjs.
 * shared/src/typebox.ts loads it, or TypeBox itself when it is missing (an install that ran
 * no scripts). A bundle that cannot be made is a warning, not a failed install: the
 * processes then load TypeBox module by module. Usage: node scripts/bundle-typebox.mjs
 */
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let partial = null;
try {
  // Loaded here, not imported above: an install without esbuild (or without TypeBox) still succeeds.
  const { build } = await import('esbuild');
  // node_modules/typebox/build/index.mjs -> node_modules/typebox
  const packageDir = dirname(dirname(createRequire(import.meta.url).resolve('typebox')));
  const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  const target = join(dirname(packageDir), '.cache', 'tributary', `typebox-${version}.mjs`);
  mkdirSync(dirname(target), { recursive: true });
  // Written aside and renamed: a process starting meanwhile never loads half a file.
  partial = `${target}.${process.pid}.partial`;
  await build({
    stdin: {
      contents: "export { default as Type } from 'typebox';\nexport { Compile } from 'typebox/compile';\n",
      resolveDir: packageDir,
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outfile: partial,
    logLevel: 'warning',
  });
  renameSync(partial, target);
  console.log(`typebox ${version} bundled: ${target}`);
} catch (error) {
  if (partial) rmSync(partial, { force: true });
  console.warn(
    `typebox was not bundled (${error instanceof Error ? error.message : String(error)}): processes load it module by module, which takes longer`,
  );
}
