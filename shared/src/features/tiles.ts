/**
 * Sliding windows at tile granularity (the Chronon/Tecton layout): each event is added to
 * one pre-aggregated tile per tile size; a window of length W read at time `now` merges the
 * tiles whose start lies in [floor((now - W) / T) * T, now]. A window therefore covers
 * between W and W + T of history: the error bound is one tile of extra, older events.
 */
const TILE_SIZES_MS = [60_000, 300_000, 3_600_000, 86_400_000] as const;

/** The tile size for a window: the largest standard size not above a sixth of the window. */
export function tileSizeFor(windowMs: number): number {
  let chosen: number = TILE_SIZES_MS[0];
  for (const size of TILE_SIZES_MS) if (size <= windowMs / 6) chosen = size;
  return chosen;
}

export function tileStart(eventTimeMs: number, tileSizeMs: number): number {
  return Math.floor(eventTimeMs / tileSizeMs) * tileSizeMs;
}

/** First tile start included in a window of `windowMs` read at `nowMs`. */
export function windowFirstTile(nowMs: number, windowMs: number, tileSizeMs: number): number {
  return tileStart(nowMs - windowMs, tileSizeMs);
}

/** The digits of `text` from `from` to `to` as a number; NaN for anything else (or past 2^53). */
function digits(text: string, from: number, to: number): number {
  if (from >= to) return NaN;
  let number = 0;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return NaN;
    number = number * 10 + (code - 48);
  }
  return number <= Number.MAX_SAFE_INTEGER ? number : NaN;
}

/**
 * A tile key's `<tileMs>:<start>` as numbers, into `into` (a caller's scratch object): the usual
 * integers are read without slicing the key, anything else as `Number` reads it.
 */
export function readTileKey(key: string, into: { tileMs: number; start: number }): void {
  const colon = key.indexOf(':');
  let tileMs = digits(key, 0, colon);
  let start = key.charCodeAt(colon + 1) === 45 /* - */ ? -digits(key, colon + 2, key.length) : digits(key, colon + 1, key.length);
  if (Number.isNaN(tileMs)) tileMs = Number(key.slice(0, colon));
  if (Number.isNaN(start)) start = Number(key.slice(colon + 1));
  into.tileMs = tileMs;
  into.start = start;
}
