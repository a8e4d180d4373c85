/**
 * The node flags a service's `npm start` gives it (`exec tsx <flags> src/main.ts` in its
 * package.json; the image's command gives the same, shared/test/deploy/dockerfile.test.ts):
 * tests that start a service with node directly (for its pid) run it as it is deployed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function serviceNodeFlags(service: string): string[] {
  const { scripts } = JSON.parse(readFileSync(`${ROOT}services/${service}/package.json`, 'utf8')) as { scripts?: { start?: string } };
  const start = scripts?.start ?? '';
  const flags = /^exec tsx ((?:--\S+ )*)src\/main\.ts$/.exec(start)?.[1];
  if (flags === undefined)
    throw new Error(`services/${service}: a start script "exec tsx [--flag ...] src/main.ts" was expected, not "${start}"`);
  return flags.split(' ').filter(Boolean);
}
