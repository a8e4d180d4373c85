/**
 * The example's world: card holders with habits, merchants, and fraudsters who take over
 * an account for a short burst of large, often foreign, mostly online purchases. Pure and
 * seeded: the trainer replays the same world in virtual time.
 *
 * An optional drift schedule changes the world from a point on (see
 * shared/src/example/fraud/simulator-drift.ts). Its random choices come from a stream of
 * their own, so the transactions before the drift point are exactly those of a run without
 * drift, and a pure amount shift leaves everything but the amounts as they would have been.
 */
import { createRandom, type fraud, type Random } from '@tributary/shared';

export interface SimulatedTransaction {
  transaction: {
    event_id: string;
    user_id: string;
    merchant_id: string;
    amount: number;
    currency: string;
    country: string;
    channel: 'web' | 'app' | 'pos';
    ts: number;
  };
  fraud: boolean;
}

export interface GeneratorOptions {
  seed: number;
  users: number;
  merchants?: number;
  /** Target share of fraudulent transactions. */
  fraudRate: number;
  /** Drift to inject from a point on; none when absent. */
  drift?: fraud.DriftSchedule;
  /**
   * The run, in the event ids: `e_<seed>_<run>_<n>`, so that a run's ids are not another's of
   * the same seed (the real-time simulator draws one at each start). None: `e_<seed>_<n>`, the
   * same ids at each replay of the seed.
   */
  run?: string;
}

const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'ES', 'IT', 'NL', 'BR', 'IN', 'JP', 'NG', 'RU'];
const CHANNELS = ['web', 'app', 'pos'] as const;
const BURST = { min: 2, max: 6 };

interface User {
  id: string;
  home: string;
  typicalAmount: number;
  channel: (typeof CHANNELS)[number];
  merchants: number[];
}

function logNormal(random: Random, mu: number, sigma: number): number {
  return Math.exp(mu + sigma * random.normal());
}

export function createTransactionGenerator(options: GeneratorOptions) {
  const random = createRandom(options.seed);
  const merchantCount = options.merchants ?? Math.max(10, Math.round(options.users / 10));
  const users: User[] = Array.from({ length: options.users }, (_, i) => ({
    id: `u_${i + 1}`,
    home: random.next() < 0.7 ? 'US' : COUNTRIES[random.int(COUNTRIES.length)]!,
    typicalAmount: logNormal(random, 3.4, 0.6),
    channel: CHANNELS[random.int(3)]!,
    merchants: Array.from({ length: 5 }, () => random.int(merchantCount)),
  }));
  const compromised = new Map<string, number>();
  const meanBurst = (BURST.min + BURST.max) / 2;
  let sequence = 0;
  const idPrefix = options.run === undefined ? `e_${options.seed}_` : `e_${options.seed}_${options.run}_`;
  const drift = options.drift;
  const driftRandom = createRandom(options.seed + 2);
  let firstTs: number | undefined;

  /** Whether the transaction about to be generated (the `sequence + 1`th, at `ts`) is past the drift point. */
  const drifting = (ts: number): boolean => {
    if (!drift) return false;
    firstTs ??= ts;
    return 'transactions' in drift.after ? sequence >= drift.after.transactions : ts - firstTs >= drift.after.ms;
  };

  /** The covariate shifts of the schedule, applied to a generated transaction. */
  const shift = (generated: SimulatedTransaction): SimulatedTransaction => {
    const transaction = generated.transaction;
    if (drift?.amountScale !== undefined) transaction.amount = Math.round(transaction.amount * drift.amountScale * 100) / 100;
    if (drift?.channel && driftRandom.next() < drift.channel.share) transaction.channel = drift.channel.value;
    if (drift?.country && driftRandom.next() < drift.country.share) transaction.country = drift.country.value;
    return generated;
  };

  const normal = (user: User, ts: number): SimulatedTransaction => ({
    fraud: false,
    transaction: {
      event_id: `${idPrefix}${++sequence}`,
      user_id: user.id,
      merchant_id: `m_${(random.next() < 0.8 ? user.merchants[random.int(user.merchants.length)]! : random.int(merchantCount)) + 1}`,
      amount: Math.round(user.typicalAmount * logNormal(random, 0, 0.5) * 100) / 100,
      currency: 'USD',
      country: random.next() < 0.95 ? user.home : COUNTRIES[random.int(COUNTRIES.length)]!,
      channel: random.next() < 0.8 ? user.channel : CHANNELS[random.int(3)]!,
      ts,
    },
  });

  const fraudulent = (user: User, ts: number): SimulatedTransaction => {
    const foreign = COUNTRIES.filter((c) => c !== user.home);
    return {
      fraud: true,
      transaction: {
        event_id: `${idPrefix}${++sequence}`,
        user_id: user.id,
        merchant_id: `m_${random.int(Math.max(1, Math.round(merchantCount / 20))) + 1}`,
        amount: Math.round(logNormal(random, 5.3, 0.7) * 100) / 100,
        currency: 'USD',
        country: random.next() < 0.7 ? foreign[random.int(foreign.length)]! : user.home,
        channel: random.next() < 0.75 ? 'web' : CHANNELS[random.int(3)]!,
        ts,
      },
    };
  };

  return {
    users: users.length,
    /** The next transaction, at event time `ts`. */
    next(ts: number): SimulatedTransaction {
      const drifted = drifting(ts);
      const fraudRate = drifted && drift!.fraudRate !== undefined ? drift!.fraudRate : options.fraudRate;
      // Concept drift: the fraudster buys like the card holder, so only the burst gives it away.
      const fraudBy = (user: User) =>
        drifted && drift!.fraudPattern === 'mimic' ? { ...normal(user, ts), fraud: true } : fraudulent(user, ts);
      // Fraud comes in bursts of meanBurst transactions on average: a share fraudRate / meanBurst of all transactions
      // start one and a share fraudRate (meanBurst - 1) / meanBurst continue one, so that fraudRate of them are fraud.
      // A burst goes on with chance fraudRate at each transaction while a card is compromised (more than it needs:
      // the bursts do not pile up); a burst starts with the chance that makes the starts that share of the rest.
      const continuing = (fraudRate * (meanBurst - 1)) / meanBurst;
      const start = fraudRate / meanBurst / (1 - continuing);
      let generated: SimulatedTransaction;
      if (compromised.size > 0 && random.next() < fraudRate) {
        const ids = [...compromised.keys()];
        const id = ids[random.int(ids.length)]!;
        const left = compromised.get(id)! - 1;
        if (left <= 0) compromised.delete(id);
        else compromised.set(id, left);
        generated = fraudBy(users[Number(id.slice(2)) - 1]!);
      } else {
        const user = users[random.int(users.length)]!;
        if (!compromised.has(user.id) && random.next() < start) {
          compromised.set(user.id, BURST.min + random.int(BURST.max - BURST.min + 1) - 1);
          generated = fraudBy(user);
        } else {
          generated = normal(user, ts);
        }
      }
      return drifted ? shift(generated) : generated;
    },
    meanBurst,
  };
}
