/**
 * Testing in production (the book's chapter 9): besides its champion, a model's routing may
 * carry one rollout policy and any number of shadow versions.
 *
 * - `canary`: a percentage of requests (chosen by a hash of the request id, so a retried
 *   request lands on the same version) is answered by the canary version (KServe's canary).
 * - `ab`: arms with weights, sticky per entity: a hash of the entity id picks the arm, so one
 *   user always sees one arm.
 * - `bandit`: Thompson sampling across versions (Seldon's router): each request draws from
 *   every version's Beta(1 + reward, 1 + trials - reward) posterior and goes to the best draw;
 *   rewards come from label feedback.
 * - shadows are scored on every request after the answer is sent, logged with variant
 *   `shadow`, never returned.
 * All functions here are pure (randomness is passed in).
 */
import { TributaryError, type PredictionVariant } from '@tributary/shared';

export type RolloutPolicy =
  | { kind: 'champion' }
  | { kind: 'canary'; version: string; percent: number }
  | { kind: 'ab'; arms: { version: string; weight: number }[]; entity?: string }
  | { kind: 'bandit'; versions: string[] };

export type Variant = PredictionVariant;

/** Observed rewards per version (trials and the sum of rewards in [0, 1]). */
export type Rewards = Record<string, { trials: number; reward: number }>;

export interface Choice {
  version: string;
  variant: Variant;
}

/**
 * A stable hash of a string into [0, 1): FNV-1a over the UTF-16 code units, then
 * MurmurHash3's 32-bit finalizer, without which ids differing only in their last
 * characters (`req-1`, `req-2`) crowd into part of the range.
 */
export function stableFraction(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 0x1_0000_0000;
}

/** The versions a policy routes to besides the champion. */
export function policyVersions(policy: RolloutPolicy): string[] {
  switch (policy.kind) {
    case 'champion':
      return [];
    case 'canary':
      return [policy.version];
    case 'ab':
      return policy.arms.map((a) => a.version);
    case 'bandit':
      return policy.versions;
  }
}

/** Checks a policy's own shape (the registry checks that its versions can serve). */
/** The most A/B arms, bandit versions or shadows one routing takes (each is a model loaded in every replica). */
export const MAX_ROLLOUT_VERSIONS = 10;

export function checkPolicy(policy: RolloutPolicy, champion: string, shadows: string[]): void {
  const bad = (message: string): never => {
    throw new TributaryError('VALIDATION_FAILED', message);
  };
  switch (policy.kind) {
    case 'champion':
      break;
    case 'canary':
      if (!(policy.percent > 0 && policy.percent < 100)) bad('a canary takes more than 0 and less than 100 percent of requests');
      if (policy.version === champion) bad(`version ${champion} is the champion; a canary must be another version`);
      break;
    case 'ab': {
      if (policy.arms.length < 2) bad('an A/B test needs at least two arms');
      if (policy.arms.some((a) => !(a.weight > 0 && Number.isFinite(a.weight)))) bad('every A/B arm needs a weight above 0');
      // Shares are weight / total: a total past the largest double would send every request to the last arm.
      if (!Number.isFinite(policy.arms.reduce((total, a) => total + a.weight, 0)))
        bad('the A/B weights add up to more than a number can hold');
      if (new Set(policy.arms.map((a) => a.version)).size !== policy.arms.length) bad('an A/B test names a version twice');
      break;
    }
    case 'bandit':
      if (policy.versions.length < 2) bad('a bandit needs at least two versions');
      if (new Set(policy.versions).size !== policy.versions.length) bad('a bandit names a version twice');
      break;
  }
  const named = policyVersions(policy).length;
  if (named > MAX_ROLLOUT_VERSIONS)
    bad(`a rollout policy names at most ${MAX_ROLLOUT_VERSIONS} versions (this ${policy.kind} policy names ${named})`);
  if (shadows.length > MAX_ROLLOUT_VERSIONS)
    bad(`a routing takes at most ${MAX_ROLLOUT_VERSIONS} shadow versions (${shadows.length} named)`);
  if (new Set(shadows).size !== shadows.length) bad('a shadow version is named twice');
  if (shadows.includes(champion)) bad(`version ${champion} is the champion; it cannot also be a shadow`);
  const routed = policyVersions(policy);
  const both = shadows.find((s) => routed.includes(s));
  if (both !== undefined) bad(`version ${both} answers requests under the ${policy.kind} policy; it cannot also be a shadow`);
}

/** A Gamma(shape, 1) draw (Marsaglia and Tsang 2000), for shape >= 1. */
function gamma(shape: number, random: () => number, normal: () => number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = random();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Beta(a, b) draw for a, b >= 1. */
export function betaDraw(a: number, b: number, random: () => number): number {
  const normal = () => {
    // Box-Muller.
    const u = 1 - random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
  const x = gamma(a, random, normal);
  const y = gamma(b, random, normal);
  return x / (x + y);
}

/**
 * The version answering one request. `entityId` keys A/B stickiness (the id of the policy's
 * entity, or of the request's first entity); a request without it (null) is placed by its
 * request id: not sticky, but in the arms' shares (it used to go to the first arm, every one).
 */
export function chooseVersion(
  champion: string,
  policy: RolloutPolicy,
  request: { requestId: string; entityId: string | null },
  rewards: Rewards,
  random: () => number,
): Choice {
  switch (policy.kind) {
    case 'champion':
      return { version: champion, variant: 'champion' };
    case 'canary':
      return stableFraction(request.requestId) * 100 < policy.percent
        ? { version: policy.version, variant: 'canary' }
        : { version: champion, variant: 'champion' };
    case 'ab': {
      const total = policy.arms.reduce((sum, a) => sum + a.weight, 0);
      let point = stableFraction(request.entityId ?? request.requestId) * total;
      for (const arm of policy.arms) {
        if (point < arm.weight) return { version: arm.version, variant: 'ab' };
        point -= arm.weight;
      }
      return { version: policy.arms.at(-1)!.version, variant: 'ab' };
    }
    case 'bandit': {
      let best = policy.versions[0]!;
      let bestDraw = -1;
      for (const version of policy.versions) {
        const seen = (Object.hasOwn(rewards, version) ? rewards[version] : undefined) ?? { trials: 0, reward: 0 };
        const reward = Math.min(Math.max(seen.reward, 0), seen.trials);
        const draw = betaDraw(1 + reward, 1 + seen.trials - reward, random);
        if (draw > bestDraw) {
          bestDraw = draw;
          best = version;
        }
      }
      return { version: best, variant: 'bandit' };
    }
  }
}
