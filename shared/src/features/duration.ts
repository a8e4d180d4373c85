/** Durations in feature definitions: `30s`, `10m`, `1h`, `24h`, `7d`. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration (expected e.g. 30s, 10m, 1h, 7d)`);
  const value = Number(match[1]);
  if (value <= 0) throw new Error(`"${text}" must be a positive duration`);
  return value * UNIT_MS[match[2]!]!;
}

/** A duration as its largest whole unit (`25h`, `8d`, `90s`): the inverse of `parseDuration`. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}
