import { describe, expect, it } from 'vitest';
import { createRandom } from '@tributary/shared';
import { betaDraw, checkPolicy, chooseVersion, stableFraction, type RolloutPolicy } from '../src/registry/rollout.js';

const random = () => {
  const r = createRandom(42);
  return () => r.next();
};

const route = (policy: RolloutPolicy, requestId: string, entityId: string | null = null, rewards = {}, draw = random()) =>
  chooseVersion('1', policy, { requestId, entityId }, rewards, draw);

describe('rollout policies', () => {
  it('champion: every request to the champion', () => {
    for (let i = 0; i < 100; i++) expect(route({ kind: 'champion' }, `r${i}`)).toEqual({ version: '1', variant: 'champion' });
  });

  it('canary: about the percentage of requests, the same request id always on the same version', () => {
    const policy: RolloutPolicy = { kind: 'canary', version: '2', percent: 10 };
    const choices = Array.from({ length: 20_000 }, (_, i) => route(policy, `req-${i}`));
    const share = choices.filter((c) => c.version === '2').length / choices.length;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThan(0.11);
    expect(choices.filter((c) => c.version === '2').every((c) => c.variant === 'canary')).toBe(true);
    expect(choices.filter((c) => c.version === '1').every((c) => c.variant === 'champion')).toBe(true);
    for (let i = 0; i < 200; i++) expect(route(policy, `req-${i}`)).toEqual(choices[i]);
  });

  it('A/B: one entity always sees one arm, and the arms split the entities by weight', () => {
    const policy: RolloutPolicy = {
      kind: 'ab',
      arms: [
        { version: '1', weight: 3 },
        { version: '2', weight: 1 },
      ],
    };
    const perUser = new Map<string, string>();
    for (let i = 0; i < 40_000; i++) {
      const user = `u${i % 8000}`;
      const choice = route(policy, `r${i}`, user);
      expect(choice.variant).toBe('ab');
      if (perUser.has(user)) expect(choice.version).toBe(perUser.get(user));
      perUser.set(user, choice.version);
    }
    const share = [...perUser.values()].filter((v) => v === '2').length / perUser.size;
    expect(share).toBeGreaterThan(0.22);
    expect(share).toBeLessThan(0.28);
  });

  it('bandit: with no feedback the versions share the traffic; with feedback the better one takes most of it', () => {
    const policy: RolloutPolicy = { kind: 'bandit', versions: ['1', '2'] };
    const draw = random();
    const share = (rewards: object) =>
      Array.from({ length: 4000 }, (_, i) => route(policy, `r${i}`, null, rewards, draw)).filter((c) => c.version === '2').length / 4000;
    const even = share({});
    expect(even).toBeGreaterThan(0.45);
    expect(even).toBeLessThan(0.55);
    // Version 2 right 90% of 500 times, version 1 right 70%: the posteriors barely overlap.
    expect(share({ '1': { trials: 500, reward: 350 }, '2': { trials: 500, reward: 450 } })).toBeGreaterThan(0.99);
    // Little evidence: both still explored.
    const unsure = share({ '1': { trials: 4, reward: 2 }, '2': { trials: 4, reward: 3 } });
    expect(unsure).toBeGreaterThan(0.55);
    expect(unsure).toBeLessThan(0.9);
  });

  it('Thompson draws follow Beta(a, b): mean a / (a + b) and its variance', () => {
    const draw = random();
    for (const [a, b] of [
      [1, 1],
      [3, 7],
      [50, 10],
    ] as const) {
      const xs = Array.from({ length: 20_000 }, () => betaDraw(a, b, draw));
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
      expect(mean).toBeCloseTo(a / (a + b), 2);
      expect(variance).toBeCloseTo((a * b) / ((a + b) ** 2 * (a + b + 1)), 3);
      expect(xs.every((x) => x > 0 && x < 1)).toBe(true);
    }
  });

  it('hashes stably into [0, 1)', () => {
    expect(stableFraction('u_1')).toBe(stableFraction('u_1'));
    expect(stableFraction('u_1')).not.toBe(stableFraction('u_2'));
    for (let i = 0; i < 1000; i++) {
      const f = stableFraction(`k${i}`);
      expect(f >= 0 && f < 1).toBe(true);
    }
  });

  it('rejects a policy that cannot be right, naming why', () => {
    const cases: [RolloutPolicy, string[], RegExp][] = [
      [{ kind: 'canary', version: '2', percent: 0 }, [], /more than 0 and less than 100/],
      [{ kind: 'canary', version: '2', percent: 100 }, [], /more than 0 and less than 100/],
      [{ kind: 'canary', version: '1', percent: 5 }, [], /version 1 is the champion/],
      [{ kind: 'ab', arms: [{ version: '1', weight: 1 }] }, [], /at least two arms/],
      [
        {
          kind: 'ab',
          arms: [
            { version: '1', weight: 1e308 },
            { version: '2', weight: 1e308 },
          ],
        },
        [],
        /add up to more than a number can hold/,
      ],
      [
        {
          kind: 'ab',
          arms: [
            { version: '1', weight: 1 },
            { version: '1', weight: 2 },
          ],
        },
        [],
        /names a version twice/,
      ],
      [
        {
          kind: 'ab',
          arms: [
            { version: '1', weight: 1 },
            { version: '2', weight: 0 },
          ],
        },
        [],
        /weight above 0/,
      ],
      [{ kind: 'bandit', versions: ['1'] }, [], /at least two versions/],
      [{ kind: 'champion' }, ['1'], /champion; it cannot also be a shadow/],
      [{ kind: 'canary', version: '2', percent: 5 }, ['2'], /version 2 answers requests under the canary policy/],
      [{ kind: 'champion' }, ['3', '3'], /shadow version is named twice/],
      [
        { kind: 'bandit', versions: Array.from({ length: 11 }, (_, i) => String(i + 2)) },
        [],
        /^a rollout policy names at most 10 versions \(this bandit policy names 11\)$/,
      ],
      [
        { kind: 'ab', arms: Array.from({ length: 11 }, (_, i) => ({ version: String(i + 2), weight: 1 })) },
        [],
        /^a rollout policy names at most 10 versions \(this ab policy names 11\)$/,
      ],
      [
        { kind: 'champion' },
        Array.from({ length: 11 }, (_, i) => String(i + 2)),
        /^a routing takes at most 10 shadow versions \(11 named\)$/,
      ],
    ];
    for (const [policy, shadows, message] of cases) expect(() => checkPolicy(policy, '1', shadows)).toThrow(message);
    expect(() => checkPolicy({ kind: 'canary', version: '2', percent: 5 }, '1', ['3'])).not.toThrow();
    const ten = Array.from({ length: 10 }, (_, i) => String(i + 2));
    expect(() => checkPolicy({ kind: 'bandit', versions: ten }, '1', [])).not.toThrow();
    expect(() => checkPolicy({ kind: 'champion' }, '1', ten)).not.toThrow();
  });
});
