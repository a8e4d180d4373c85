/**
 * The simulator's world with and without an injected drift: seeded and deterministic, the
 * same as a run without drift up to the drift point, and really shifted after it.
 */
import { describe, expect, it } from 'vitest';
import { fraud } from '@tributary/shared';
import { createTransactionGenerator, type SimulatedTransaction } from '../src/generator.js';

const T0 = Date.UTC(2026, 10, 1);
const STEP_MS = 50;

/** `count` transactions, one every STEP_MS of event time. */
function generate(count: number, drift?: string, seed = 7): SimulatedTransaction[] {
  const generator = createTransactionGenerator({
    seed,
    users: 500,
    fraudRate: 0.03,
    drift: drift === undefined ? undefined : fraud.parseDriftSchedule(drift),
  });
  return Array.from({ length: count }, (_, i) => generator.next(T0 + i * STEP_MS));
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const share = (rows: SimulatedTransaction[], test: (r: SimulatedTransaction) => boolean) => rows.filter(test).length / rows.length;

describe('transaction generator', () => {
  it('is deterministic for a seed, with or without drift', () => {
    expect(generate(500)).toEqual(generate(500));
    expect(generate(500, 'after=100,amount=3,channel=web:0.5,country=NG:0.2,fraud_rate=0.2,fraud=mimic')).toEqual(
      generate(500, 'after=100,amount=3,channel=web:0.5,country=NG:0.2,fraud_rate=0.2,fraud=mimic'),
    );
    expect(generate(50, undefined, 8)).not.toEqual(generate(50, undefined, 7));
  });

  it('before the drift point, the transactions are those of a run without drift', () => {
    const plain = generate(3000);
    for (const drift of ['after=2000,amount=3', 'after=2000,channel=pos:1,country=JP:1,fraud_rate=1,fraud=mimic', 'after=100s,amount=5']) {
      // after=100s: 100 s of event time after the first transaction, at 50 ms apart: the 2001st
      expect(generate(3000, drift).slice(0, 2000), drift).toEqual(plain.slice(0, 2000));
      expect(generate(3000, drift).slice(2000), drift).not.toEqual(plain.slice(2000));
    }
  });

  it('amount=3: every later amount is three times what it would have been, nothing else changes', () => {
    const plain = generate(4000);
    const drifted = generate(4000, 'after=1000,amount=3');
    for (let i = 0; i < plain.length; i++) {
      const { amount, ...rest } = drifted[i]!.transaction;
      const { amount: before, ...plainRest } = plain[i]!.transaction;
      expect(rest).toEqual(plainRest);
      expect(drifted[i]!.fraud).toBe(plain[i]!.fraud);
      expect(amount).toBe(i < 1000 ? before : Math.round(before * 3 * 100) / 100);
    }
    // the distribution moved: the median amount after the drift point is about three times the one before
    const ratio =
      median(drifted.slice(1000).map((r) => r.transaction.amount)) / median(drifted.slice(0, 1000).map((r) => r.transaction.amount));
    expect(ratio).toBeGreaterThan(2.4);
    expect(ratio).toBeLessThan(3.6);
  });

  it('channel and country shifts move that share of the traffic', () => {
    const rows = generate(6000, 'after=3000,channel=web:0.8,country=NG:0.5');
    const [before, after] = [rows.slice(0, 3000), rows.slice(3000)];
    const web = (r: SimulatedTransaction) => r.transaction.channel === 'web';
    const nigeria = (r: SimulatedTransaction) => r.transaction.country === 'NG';
    expect(share(before, web)).toBeLessThan(0.45);
    // 80% moved to web, plus the web share of the other 20%
    expect(share(after, web)).toBeGreaterThan(0.8);
    expect(share(before, nigeria)).toBeLessThan(0.1);
    expect(share(after, nigeria)).toBeGreaterThan(0.5);
    expect(share(after, nigeria)).toBeLessThan(0.6);
  });

  it('makes the share of fraudulent transactions the fraud rate asked, in bursts of several transactions of one card', () => {
    for (const fraudRate of [0.01, 0.03, 0.15, 0.5]) {
      const generator = createTransactionGenerator({ seed: 11, users: 5_000, fraudRate });
      const rows = Array.from({ length: 200_000 }, (_, i) => generator.next(T0 + i * STEP_MS));
      const frauds = rows.filter((r) => r.fraud);
      expect(Math.abs(frauds.length / rows.length - fraudRate) / fraudRate).toBeLessThan(0.05);
      // Bursts: each compromised card makes 2 to 6 fraudulent transactions, 4 on average.
      const perCard = new Map<string, number>();
      for (const r of frauds) perCard.set(r.transaction.user_id, (perCard.get(r.transaction.user_id) ?? 0) + 1);
      expect(frauds.length / perCard.size).toBeGreaterThan(3);
    }
  });

  it('fraud_rate changes the share of fraudulent transactions (label shift)', () => {
    const rows = generate(20_000, 'after=10000,fraud_rate=0.15');
    const isFraud = (r: SimulatedTransaction) => r.fraud;
    expect(share(rows.slice(0, 10_000), isFraud)).toBeLessThan(0.05);
    expect(share(rows.slice(10_000), isFraud)).toBeGreaterThan(0.1);
  });

  it('fraud=mimic: fraud after the drift point looks like the card holder (concept drift)', () => {
    const rows = generate(40_000, 'after=20000,fraud=mimic,fraud_rate=0.1');
    const frauds = (part: SimulatedTransaction[]) => part.filter((r) => r.fraud);
    const [before, after] = [frauds(rows.slice(0, 20_000)), frauds(rows.slice(20_000))];
    const normalAfter = rows.slice(20_000).filter((r) => !r.fraud);
    expect(before.length).toBeGreaterThan(100);
    expect(after.length).toBeGreaterThan(500);
    // before: large purchases, mostly on the web; after: amounts and channels like everyone else's
    expect(median(before.map((r) => r.transaction.amount))).toBeGreaterThan(3 * median(normalAfter.map((r) => r.transaction.amount)));
    expect(median(after.map((r) => r.transaction.amount)) / median(normalAfter.map((r) => r.transaction.amount))).toBeLessThan(1.5);
    expect(share(before, (r) => r.transaction.channel === 'web')).toBeGreaterThan(0.6);
    expect(share(after, (r) => r.transaction.channel === 'web')).toBeLessThan(0.5);
  });

  it('after=0 drifts from the first transaction', () => {
    const plain = generate(200);
    const drifted = generate(200, 'after=0,amount=2');
    expect(drifted[0]!.transaction.amount).toBe(Math.round(plain[0]!.transaction.amount * 200) / 100);
  });
});
