/** Durations in feature definitions: `30s`, `10m`, `1h`, `24h`, `7d`. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration (expected e.g. 30s, 10m, 1h, 7d)`);
  const value = Number(match[1]);
  if (value <= 0) throw new Error(`"${text}" must be a positive duration`);
  return value * UNIT_MS[match[2]!]!;
}
