/**
 * The check of a reference profile read from a manifest (plain JSON written by the trainer, or
 * by hand): its shape (a TypeBox schema) and what the shape cannot say (a count per bin, finite
 * non-negative counts, increasing edges). A profile that fails it would throw wherever the
 * drift windows count on its bins or the tests read them.
 */
import { Type } from '../typebox.js';
import { recordValidator } from '../records/validation.js';
import type { ReferenceProfile } from './profile.js';

const Count = Type.Number({ minimum: 0 });

const NumericSchema = Type.Object({
  kind: Type.Literal('numeric'),
  edges: Type.Array(Type.Number()),
  counts: Type.Array(Count),
  count: Count,
  missing: Count,
  quantiles: Type.Array(Type.Number()),
});

const CategoricalSchema = Type.Object({
  kind: Type.Literal('categorical'),
  categories: Type.Array(Type.String()),
  counts: Type.Array(Count),
  count: Count,
  missing: Count,
});

export const ReferenceProfileSchema = Type.Object({
  version: Type.Literal(1),
  rows: Count,
  features: Type.Record(Type.String(), Type.Union([NumericSchema, CategoricalSchema])),
});

const profiles = recordValidator<ReferenceProfile>(ReferenceProfileSchema);

const finite = (values: readonly number[]) => values.every((x) => Number.isFinite(x));

/** The profile when it can be used, else why not (the first problem found, naming the feature). */
export function checkProfile(value: unknown): { ok: true; profile: ReferenceProfile } | { ok: false; error: string } {
  const shape = profiles.validate(value);
  if (!shape.ok) return { ok: false, error: shape.detail };
  const profile = shape.value;
  if (!Number.isFinite(profile.rows)) return { ok: false, error: 'rows: not a finite number' };
  for (const [name, feature] of Object.entries(profile.features)) {
    const problem = (text: string) => ({ ok: false as const, error: `features.${name}: ${text}` });
    if (!finite(feature.counts) || !Number.isFinite(feature.count) || !Number.isFinite(feature.missing)) {
      return problem('counts must be finite numbers');
    }
    if (feature.kind === 'numeric') {
      if (feature.counts.length !== feature.edges.length + 1) {
        return problem(`${feature.counts.length} counts for ${feature.edges.length} edges (one more count than edges expected)`);
      }
      if (!finite(feature.edges) || feature.edges.some((edge, i) => i > 0 && !(edge > feature.edges[i - 1]!))) {
        return problem('edges must be finite and strictly increasing');
      }
      if (!finite(feature.quantiles)) return problem('quantiles must be finite numbers');
    } else if (feature.counts.length !== feature.categories.length + 1) {
      return problem(
        `${feature.counts.length} counts for ${feature.categories.length} categories (one more count, for the other bucket, expected)`,
      );
    }
  }
  return { ok: true, profile };
}
