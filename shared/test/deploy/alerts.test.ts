/**
 * The alert rules: the committed alerts.yml is what deploy/prometheus/build.ts writes,
 * prometheus.yml loads it, every alert has a severity, a summary, a description and a runbook
 * section in docs/alerts.md, and the promtool tests cover each alert firing and not firing.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RULES_FILE, renderRules } from '../../../deploy/prometheus/build.js';
import { groups, runbookUrl } from '../../../deploy/prometheus/src/alerts.js';
import { ROOT } from './promql.js';

const alerts = groups.flatMap((g) => g.rules);

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as dashes. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
}

/** The promtool test cases: the alert each evaluates and whether it expects it to fire. */
function testCases(text: string): { alertname: string; fires: boolean }[] {
  return text
    .split(/^\s*- eval_time:/m)
    .slice(1)
    .map((block) => ({
      alertname: /alertname: (\w+)/.exec(block)?.[1] ?? '',
      fires: !/exp_alerts: \[\]/.test(block),
    }));
}

describe('alert rules', () => {
  it('the committed alerts.yml is the generated one (run `npx tsx deploy/prometheus/build.ts` after a change)', async () => {
    expect(await readFile(RULES_FILE, 'utf8')).toBe(await renderRules());
  });

  it('prometheus.yml loads alerts.yml', async () => {
    const config = await readFile(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
    expect(config).toMatch(/^rule_files:\n\s+- alerts\.yml$/m);
  });

  it('alert names are unique', () => {
    const names = alerts.map((a) => a.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  it('every alert has a severity, a summary, a description and a runbook section in docs/alerts.md', async () => {
    const doc = await readFile(join(ROOT, 'docs/alerts.md'), 'utf8');
    const anchors = new Set([...doc.matchAll(/^#{2,3} (.+)$/gm)].map((m) => anchor(m[1]!)));
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.severity);
      expect(a.summary.length, a.alert).toBeGreaterThan(10);
      expect(a.description.length, a.alert).toBeGreaterThan(20);
      const [file, fragment] = runbookUrl(a.alert).split('#');
      expect(file).toBe('docs/alerts.md');
      expect(anchors, `docs/alerts.md has no section for ${a.alert}`).toContain(fragment);
    }
  });

  it('docs/alerts.md documents no alert that does not exist', async () => {
    const doc = await readFile(join(ROOT, 'docs/alerts.md'), 'utf8');
    const documented = [...doc.matchAll(/^## (\w+)$/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(alerts.map((a) => a.alert).sort());
  });

  it('the promtool tests cover every alert, firing and not firing', async () => {
    const dir = join(ROOT, 'deploy/prometheus/tests');
    const files = (await readdir(dir)).filter((file) => file.endsWith('.test.yml'));
    const cases = (await Promise.all(files.map(async (file) => testCases(await readFile(join(dir, file), 'utf8'))))).flat();
    for (const a of alerts) {
      expect(
        cases.some((c) => c.alertname === a.alert && c.fires),
        `no promtool test where ${a.alert} fires`,
      ).toBe(true);
      expect(
        cases.some((c) => c.alertname === a.alert && !c.fires),
        `no promtool test where ${a.alert} stays quiet`,
      ).toBe(true);
    }
    const unknown = cases.filter((c) => !alerts.some((a) => a.alert === c.alertname));
    expect(unknown).toEqual([]);
  });
});
