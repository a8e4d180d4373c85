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
