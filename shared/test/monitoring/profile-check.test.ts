import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProfile, checkProfile } from '../../src/index.js';

const built = buildProfile(
  [
    { amount: 1, country: 'FR' },
    { amount: 2, country: 'DE' },
    { amount: 3, country: 'FR' },
  ],
  [
    { name: 'amount', kind: 'numeric' },
    { name: 'country', kind: 'categorical' },
  ],
);

describe('checkProfile', () => {
  it("accepts the profiles the trainer builds, and the example model's", () => {
    expect(checkProfile(built)).toEqual({ ok: true, profile: built });
    const manifest = JSON.parse(readFileSync(new URL('../../../models/fraud_detector/1/manifest.json', import.meta.url), 'utf8')) as {
      profile: unknown;
    };
    expect(checkProfile(manifest.profile).ok).toBe(true);
  });

  it('names the feature and the problem of a profile the drift windows could not count on', () => {
    const numeric = { kind: 'numeric', edges: [1, 2], counts: [3, 3, 3], count: 9, missing: 0, quantiles: [0, 1, 2, 3] };
    const categorical = { kind: 'categorical', categories: ['FR'], counts: [3, 1], count: 4, missing: 0 };
    const profile = (features: object) => ({ version: 1, rows: 9, features });
    const error = (value: unknown) => {
      const checked = checkProfile(value);
      return checked.ok ? 'ok' : checked.error;
    };
    expect(error(profile({ x: numeric, c: categorical }))).toBe('ok');
    expect(error(profile({ x: { ...numeric, counts: [3, null, 3] } }))).toMatch(/features\.x\.counts\.1/);
    expect(error(profile({ x: { ...numeric, counts: [3, 3] } }))).toBe(
      'features.x: 2 counts for 2 edges (one more count than edges expected)',
    );
    expect(error(profile({ x: { ...numeric, counts: [3, -1, 3] } }))).toMatch(/features\.x\.counts\.1/);
    expect(error(profile({ x: { ...numeric, counts: [3, Infinity, 3] } }))).toMatch(/features\.x\.counts\.1/);
    expect(error(profile({ x: { ...numeric, edges: [2, 1] } }))).toBe('features.x: edges must be finite and strictly increasing');
    expect(error(profile({ c: { kind: 'categorical', counts: [3, 1], count: 4, missing: 0 } }))).toMatch(/features\.c/);
    expect(error(profile({ c: { ...categorical, counts: [3] } }))).toBe(
      'features.c: 1 counts for 1 categories (one more count, for the other bucket, expected)',
    );
    expect(error({ version: 2, rows: 9, features: {} })).toMatch(/version/);
    expect(error(null)).not.toBe('ok');
  });
});
