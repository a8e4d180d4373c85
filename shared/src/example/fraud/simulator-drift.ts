/**
 * The drift the example simulator can inject (SIMULATOR_DRIFT): from a point on, the world
 * changes the way production data does. Covariate shift: amounts scaled, more traffic on one
 * channel or from one country. Label shift: another fraud rate. Concept drift: fraud that
 * looks like the card holder's own purchases, so what the model learned no longer holds.
 *
 *   after=600,amount=3                      from the 601st transaction on, amounts x3
 *   after=10m,channel=web:0.8,fraud=mimic   10 minutes (event time) after the first transaction
 */
import { parseDuration } from '../../features/duration.js';

export const DRIFT_CHANNELS = ['web', 'app', 'pos'] as const;
export type DriftChannel = (typeof DRIFT_CHANNELS)[number];

export interface DriftSchedule {
  /** When the drift begins: after this many transactions, or this long (event time) after the first one. */
  after: { transactions: number } | { ms: number };
  /** Every amount multiplied by this factor (rounded to cents). */
  amountScale?: number;
  /** This share of the transactions moves to the channel. */
  channel?: { value: DriftChannel; share: number };
  /** This share of the transactions comes from the country (ISO 3166 alpha-2). */
  country?: { value: string; share: number };
  /** The share of fraudulent transactions from then on. */
  fraudRate?: number;
  /** `mimic`: fraudsters buy what, where and how the card holder does (concept drift). */
  fraudPattern?: 'mimic';
}

const SETTINGS = ['after', 'amount', 'channel', 'country', 'fraud_rate', 'fraud'] as const;

function share(text: string, setting: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0 || value > 1) {
    throw new Error(`${setting}: the share "${text}" must be a number in (0, 1]`);
  }
  return value;
}

function target(value: string, setting: string, example: string): [string, number] {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) throw new Error(`${setting}=${value} must be <value>:<share>, e.g. ${setting}=${example}`);
  return [value.slice(0, colon), share(value.slice(colon + 1), setting)];
}

/**
 * Reads a drift schedule written as comma-separated `setting=value` items: `after` (a number
 * of transactions, or a duration such as 90s) and at least one shift (`amount=<factor>`,
 * `channel=<web|app|pos>:<share>`, `country=<CC>:<share>`, `fraud_rate=<rate>`, `fraud=mimic`).
 * Throws an Error that says which item is wrong and what is expected.
 */
export function parseDriftSchedule(text: string): DriftSchedule {
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  if (items.length === 0) throw new Error('names no setting: expected e.g. after=600,amount=3');
  const seen = new Set<string>();
  let after: DriftSchedule['after'] | undefined;
  const shifts: Omit<DriftSchedule, 'after'> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const setting = eq < 0 ? item : item.slice(0, eq).trim();
    const value = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (!(SETTINGS as readonly string[]).includes(setting)) {
      throw new Error(`unknown setting "${setting}" (expected ${SETTINGS.join(', ')})`);
    }
    if (eq < 0 || value === '') throw new Error(`${setting} has no value (write ${setting}=<value>)`);
    if (seen.has(setting)) throw new Error(`${setting} is given twice`);
    seen.add(setting);
    switch (setting) {
      case 'after':
        if (/^\d+$/.test(value)) {
          const transactions = Number(value);
          if (!Number.isSafeInteger(transactions)) throw new Error(`after=${value} is too large`);
          after = { transactions };
        } else {
          try {
            after = { ms: parseDuration(value) };
          } catch (error) {
            throw new Error(`after=${value}: expected a number of transactions or a duration (${(error as Error).message})`);
          }
        }
        break;
      case 'amount': {
        const factor = Number(value);
        if (!Number.isFinite(factor) || factor <= 0 || factor > 1000) {
          throw new Error(`amount=${value}: the factor must be a number in (0, 1000]`);
        }
        shifts.amountScale = factor;
        break;
      }
      case 'channel': {
        const [channel, part] = target(value, setting, 'web:0.8');
        if (!(DRIFT_CHANNELS as readonly string[]).includes(channel)) {
          throw new Error(`channel=${value}: the channel must be one of ${DRIFT_CHANNELS.join(', ')}`);
        }
        shifts.channel = { value: channel as DriftChannel, share: part };
        break;
      }
      case 'country': {
        const [country, part] = target(value, setting, 'NG:0.3');
        if (!/^[A-Z]{2}$/.test(country)) throw new Error(`country=${value}: the country must be two capital letters (ISO 3166)`);
        shifts.country = { value: country, share: part };
        break;
      }
      case 'fraud_rate': {
        const rate = Number(value);
        if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new Error(`fraud_rate=${value} must be a number between 0 and 1`);
        shifts.fraudRate = rate;
        break;
      }
      case 'fraud':
        if (value !== 'mimic') throw new Error(`fraud=${value}: the only fraud pattern is mimic`);
        shifts.fraudPattern = 'mimic';
        break;
    }
  }
  if (!after) throw new Error('after is missing: when the drift begins (a number of transactions, or a duration such as 90s)');
  if (Object.keys(shifts).length === 0) {
    throw new Error(
      'names no shift: add amount=<factor>, channel=<channel>:<share>, country=<CC>:<share>, fraud_rate=<rate> or fraud=mimic',
    );
  }
  return { after, ...shifts };
}

/** One line for logs: `after 600 transactions: amount x3, channel web 80%`. */
export function describeDrift(schedule: DriftSchedule): string {
  const when = 'transactions' in schedule.after ? `after ${schedule.after.transactions} transactions` : `after ${schedule.after.ms} ms`;
  const parts: string[] = [];
  if (schedule.amountScale !== undefined) parts.push(`amount x${schedule.amountScale}`);
  if (schedule.channel) parts.push(`channel ${schedule.channel.value} ${schedule.channel.share * 100}%`);
  if (schedule.country) parts.push(`country ${schedule.country.value} ${schedule.country.share * 100}%`);
  if (schedule.fraudRate !== undefined) parts.push(`fraud rate ${schedule.fraudRate}`);
  if (schedule.fraudPattern) parts.push(`fraud ${schedule.fraudPattern}`);
  return `${when}: ${parts.join(', ')}`;
}
