/**
 * The Grafana dashboards: the committed JSON is what deploy/grafana/build.ts writes from the
 * typed sources, and each dashboard is well formed for provisioning (unique uids and panel
 * ids, panels inside the grid and not overlapping, every query on the provisioned data source).
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Dashboard, Panel, RowPanel } from '@grafana/schema';
import { describe, expect, it } from 'vitest';
import { DASHBOARDS_DIR, dashboards, renderDashboards } from '../../../deploy/grafana/build.js';
import { PROMETHEUS } from '../../../deploy/grafana/src/panels.js';

const DATASOURCES = new URL('../../../deploy/grafana/provisioning/datasources/prometheus.yml', import.meta.url);

function panelsOf(dashboard: Dashboard): (Panel | RowPanel)[] {
  return (dashboard.panels ?? []).flatMap((p) => (p.type === 'row' ? [p, ...((p as RowPanel).panels ?? [])] : [p]));
}

describe('Grafana dashboards', () => {
  it('the committed JSON files are the generated ones (run `npx tsx deploy/grafana/build.ts` after a change)', async () => {
    for (const [path, text] of await renderDashboards()) {
      const committed = await readFile(path, 'utf8').catch(() => '(missing)');
      expect(committed, `${path} is stale`).toBe(text);
    }
  });

  it('every JSON file in the provisioned folder comes from a source', async () => {
    const files = (await readdir(DASHBOARDS_DIR)).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual(Object.keys(dashboards).sort());
  });

  it('uids are unique and titles set', () => {
    const uids = Object.values(dashboards).map((d) => d.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const d of Object.values(dashboards)) {
      expect(d.uid).toMatch(/^[a-z0-9-]{1,40}$/);
      expect(d.title).toBeTruthy();
    }
  });

  for (const [file, dashboard] of Object.entries(dashboards)) {
    describe(basename(file), () => {
      const panels = panelsOf(dashboard);

      it('panel ids are unique', () => {
        const ids = panels.map((p) => p.id);
        expect(ids.every((id) => typeof id === 'number')).toBe(true);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it('panels lie inside the 24-column grid and do not overlap', () => {
        const boxes = panels.map((p) => ({ title: p.title, ...p.gridPos! }));
        for (const b of boxes) {
          expect(b.x, b.title).toBeGreaterThanOrEqual(0);
          expect(b.x + b.w, b.title).toBeLessThanOrEqual(24);
        }
        for (let i = 0; i < boxes.length; i++) {
          for (let j = i + 1; j < boxes.length; j++) {
            const [a, b] = [boxes[i]!, boxes[j]!];
            const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
            expect(overlap, `"${a.title}" overlaps "${b.title}"`).toBe(false);
          }
        }
      });

      it('every panel has a title and a description, and every query a refId, an expression and the provisioned data source', async () => {
        const provisioned = await readFile(DATASOURCES, 'utf8');
        expect(provisioned).toMatch(new RegExp(`^\\s*uid: ${PROMETHEUS.uid}\\s*$`, 'm'));
        expect(provisioned).toMatch(new RegExp(`^\\s*type: ${PROMETHEUS.type}\\s*$`, 'm'));
        for (const panel of panels) {
          if (panel.type === 'row') continue;
          const p = panel as Panel;
          expect(p.title, JSON.stringify(p.gridPos)).toBeTruthy();
          expect(p.description, p.title).toBeTruthy();
          expect(p.datasource, p.title).toEqual(PROMETHEUS);
          expect(p.targets?.length, p.title).toBeGreaterThan(0);
          const refIds = new Set<unknown>();
          for (const t of p.targets ?? []) {
            expect(t.datasource, p.title).toEqual(PROMETHEUS);
            expect(typeof t.expr, p.title).toBe('string');
            expect(refIds.has(t.refId), `${p.title}: duplicate refId`).toBe(false);
            refIds.add(t.refId);
          }
        }
      });

      it('the JSON Grafana reads has the same panels as the source', async () => {
        const json = JSON.parse(await readFile(join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard;
        expect(json).toEqual(JSON.parse(JSON.stringify(dashboard)));
      });
    });
  }
});
