/**
 * docs/operations.md, the operator's handbook: its metrics reference names every metric the
 * services register (and nothing they do not), and its links lead to files and headings that
 * exist.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, ROOT } from './deployment.js';
import { exposedMetrics } from './promql.js';

const DOC = 'docs/operations.md';
const text = read(DOC);

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as dashes. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

const anchorsOf = (markdown: string) => new Set([...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));

describe('docs/operations.md', () => {
  it('lists every metric the services register in its metrics reference, and only those', async () => {
    const exposed = await exposedMetrics();
    // Histogram series (_bucket, _sum, _count) are listed under the histogram's name.
    const registered = [...exposed].filter(
      (name) => !/_(bucket|sum|count)$/.test(name) || !exposed.has(name.replace(/_(bucket|sum|count)$/, '')),
    );
    const section = text.slice(text.indexOf('## Metrics reference'), text.indexOf('\n## ', text.indexOf('## Metrics reference') + 1));
    const listed = [...section.matchAll(/^\| `(tributary_\w+)`/gm)].map((m) => m[1]!);
    expect(new Set(listed).size, 'each metric once').toBe(listed.length);
    expect([...listed].sort()).toEqual([...registered].sort());
  });

  it('links to files and headings that exist', () => {
    const problems: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^https?:/.test(target!)) continue;
      const [file, hash] = target!.split('#') as [string, string | undefined];
      const path = file === '' ? join(ROOT, DOC) : join(ROOT, dirname(DOC), file);
      if (!existsSync(path)) {
        problems.push(`${target}: no file ${path}`);
        continue;
      }
      if (hash !== undefined && !anchorsOf(read(path.slice(ROOT.length))).has(hash)) problems.push(`${target}: no heading #${hash}`);
    }
    expect(problems).toEqual([]);
    for (const doc of ['configuration.md', 'alerts.md']) expect(text).toContain(`](${doc})`);
  });

  it('names the files it describes', () => {
    for (const path of text.matchAll(/`((?:deploy|shared|services|docs)\/[\w./-]+\.(?:ya?ml|ts|json|md|py))`/g)) {
      if (path[1]!.includes('*')) continue;
      expect(existsSync(join(ROOT, path[1]!)), path[1]).toBe(true);
    }
  });
});
