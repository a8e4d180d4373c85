/**
 * Writes the Grafana dashboards (deploy/grafana/src/*.ts, type-checked against
 * @grafana/schema) to deploy/grafana/dashboards/*.json, the files Grafana provisions.
 *
 *   npx tsx deploy/grafana/build.ts           # write the JSON files
 *   npx tsx deploy/grafana/build.ts --check   # exit 1 if a committed file differs
 *
 * shared/test/deploy/dashboards.test.ts fails when the committed JSON is not what this writes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Dashboard } from '@grafana/schema';
import { format, resolveConfig } from 'prettier';
import { modelQuality } from './src/model-quality.js';
import { overview } from './src/overview.js';

export const DASHBOARDS_DIR = fileURLToPath(new URL('./dashboards/', import.meta.url));

/** Every provisioned dashboard, by file name. */
export const dashboards: Record<string, Dashboard> = {
  'tributary-overview.json': overview,
  'tributary-model-quality.json': modelQuality,
};

/** The text of each dashboard file, formatted as the repository's Prettier settings format it. */
export async function renderDashboards(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, dashboard] of Object.entries(dashboards)) {
    const path = join(DASHBOARDS_DIR, name);
    const options = (await resolveConfig(path)) ?? {};
    out.set(path, await format(JSON.stringify(dashboard), { ...options, filepath: path }));
  }
  return out;
}

async function main(check: boolean): Promise<void> {
  let stale = 0;
  for (const [path, text] of await renderDashboards()) {
    if (check) {
      const committed = await readFile(path, 'utf8').catch(() => '');
      if (committed !== text) {
        stale += 1;
        console.error(`${path} is not up to date: run npx tsx deploy/grafana/build.ts`);
      }
    } else {
      await writeFile(path, text);
      console.log(`wrote ${path}`);
    }
  }
  if (stale > 0) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.includes('--check'));
}
