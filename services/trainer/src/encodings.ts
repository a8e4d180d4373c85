/**
 * How a served version's logged values compare with the encoding of the model a training set
 * is built for. The prediction log holds each feature as the serving version encoded it: its
 * type (a category as its index in that version's vocabulary) and, for a missing value, that
 * version's default. Rows of one version become rows for another only where both encode
 * alike. Pure.
 */
import { planModelFeatures, type FeatureCatalog, type FeaturePlan, type ModelFeatureList } from '@tributary/shared';
import { InputError } from './log-input.js';

/**
 * - `same`: the version encodes every wanted feature as the target does;
 * - `other_defaults`: the same types, other defaults for some features: a value the log lists
 *   as `defaulted` takes the target's default (by feature name, encoded);
 * - `other_types`: a feature of another type (not a category's vocabulary): rows left out;
 * - `unknown`: the version's manifest is not known (not in the registry): rows left out.
 */
export type VersionEncoding =
  | { kind: 'same' }
  | { kind: 'other_defaults'; defaults: Map<string, number> }
  | { kind: 'other_types'; detail: string }
  | { kind: 'unknown' };

/** A type as it encodes: undeclared (a finite number, booleans defaulted) differs from `number` (booleans as 1/0). */
function typeOf(plan: FeaturePlan, index: number): string {
  const type = plan.types[index];
  return type ? JSON.stringify(type.spec) : 'undeclared (number)';
}

/**
 * Compares a served version with the target over the target's features. Throws an InputError
 * when a category's vocabularies differ: the same index means another value in each, and
 * the rows cannot be told apart (build the set from one side with --served-version).
 */
export function compareEncodings(
  target: ModelFeatureList & { version: string },
  served: (ModelFeatureList & { version: string }) | null,
  catalog: FeatureCatalog,
): VersionEncoding {
  if (!served) return { kind: 'unknown' };
  const targetPlan = planModelFeatures(target, catalog);
  const servedPlan = planModelFeatures(served, catalog);
  const defaults = new Map<string, number>();
  for (const [i, name] of target.features.entries()) {
    const at = served.features.indexOf(name);
    if (at < 0) return { kind: 'other_types', detail: `version ${served.version} does not read ${name}` };
    const [mine, theirs] = [targetPlan.types[i]?.spec, servedPlan.types[at]?.spec];
    if (mine?.type === 'category' && theirs?.type === 'category' && typeOf(targetPlan, i) !== typeOf(servedPlan, at))
      throw new InputError(
        `feature ${name} is a category with another vocabulary in version ${served.version} than in version ${target.version} ` +
          `(${JSON.stringify(theirs.vocabulary)} against ${JSON.stringify(mine.vocabulary)}): their codes name other values; ` +
          `take one version's predictions with --served-version`,
      );
    if (typeOf(targetPlan, i) !== typeOf(servedPlan, at))
      return {
        kind: 'other_types',
        detail: `${name} is ${typeOf(servedPlan, at)} in version ${served.version}, ${typeOf(targetPlan, i)} in version ${target.version}`,
      };
    if (!Object.is(targetPlan.defaults[i], servedPlan.defaults[at])) defaults.set(name, targetPlan.defaults[i]!);
  }
  return defaults.size === 0 ? { kind: 'same' } : { kind: 'other_defaults', defaults };
}
