/**
 * Reward feedback for bandit rollouts (Seldon's `/feedback`): per model and version, the
 * number of judged predictions and the sum of their rewards (each in [0, 1]). Kept where
 * every replica reads it (Redis, or memory for the embedded default); the monitor adds a
 * reward for every labelled bandit prediction, and clients may send their own.
 */
import type { Cluster, Redis } from 'ioredis';
import { closeRedis, connectRedis, TributaryError, type RedisTarget } from '@tributary/shared';
import { ROUTING_REDIS_OPTIONS, unavailable } from './routing.js';
import type { Rewards } from './rollout.js';

export interface RewardStore {
  add(model: string, version: string, trials: number, reward: number): Promise<void>;
  get(model: string): Promise<Rewards>;
  /** Resolves when the store answers (for `/readyz`). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class MemoryRewardStore implements RewardStore {
  private readonly rewards = new Map<string, Rewards>();

  async add(model: string, version: string, trials: number, reward: number): Promise<void> {
    const byVersion = this.rewards.get(model) ?? (Object.create(null) as Rewards);
    const seen = byVersion[version] ?? { trials: 0, reward: 0 };
    byVersion[version] = { trials: seen.trials + trials, reward: seen.reward + reward };
    this.rewards.set(model, byVersion);
  }

  async get(model: string): Promise<Rewards> {
    return Object.assign(Object.create(null) as Rewards, structuredClone(this.rewards.get(model) ?? {}));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}

/** One hash per model, `<prefix>rewards:{<model>}`, fields `<version>:t` and `<version>:r`. */
export class RedisRewardStore implements RewardStore {
  private readonly client: Redis | Cluster;

  constructor(
    target: RedisTarget,
    private readonly keyPrefix: string,
  ) {
    this.client = connectRedis(target, ROUTING_REDIS_OPTIONS);
    this.client.on('error', () => {});
  }

  private key(model: string): string {
    return `${this.keyPrefix}rewards:{${model}}`;
  }

  async add(model: string, version: string, trials: number, reward: number): Promise<void> {
    // Both fields in one MULTI: a reader never sees the trials without their rewards.
    const result = await this.client
      .multi()
      .hincrbyfloat(this.key(model), `${version}:t`, trials)
      .hincrbyfloat(this.key(model), `${version}:r`, reward)
      .exec()
      .catch((error: unknown) => unavailable(error, true));
    for (const [error] of result ?? []) {
      if (!error) continue;
      // Redis refused the increments: the key or a field holds something else than numbers (written by something else).
      throw new TributaryError(
        'ROUTING_STORE_UNAVAILABLE',
        `the reward store cannot add to ${this.key(model)} (${error.message}): it holds something else than reward counts; delete that key (the bandit then starts from no feedback)`,
        { cause: error },
      );
    }
  }

  async get(model: string): Promise<Rewards> {
    const fields = await this.client.hgetall(this.key(model)).catch(unavailable);
    // No prototype: a field named after `__proto__` is an entry like any other.
    const rewards = Object.create(null) as Rewards;
    for (const [field, value] of Object.entries(fields)) {
      const colon = field.lastIndexOf(':');
      const version = field.slice(0, colon);
      const entry = (rewards[version] ??= { trials: 0, reward: 0 });
      // A value that is no count (written by something else) counts as none.
      const count = Number(value);
      if (!Number.isFinite(count) || count < 0) continue;
      if (field.endsWith(':t')) entry.trials = count;
      else if (field.endsWith(':r')) entry.reward = count;
    }
    return rewards;
  }

  async ping(): Promise<void> {
    await this.client.ping().catch(unavailable);
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}
