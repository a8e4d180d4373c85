/**
 * A sliding window over event time as a fixed ring of time buckets (e.g. 24 buckets of one
 * hour for a 24 h window): each bucket holds a mergeable state, and a read merges the
 * buckets inside the window. A window of `buckets` buckets ending at `now` merges the bucket
 * holding `now` and the `buckets` before it, so it covers the whole span (buckets x bucketMs)
 * and at most one bucket more: the "1h" window of one-minute buckets reads 60 to 61 minutes,
 * never less than the hour its name promises. Memory is `buckets + 1` states, plus the slots
 * kept for events stamped ahead of the reader's clock (`aheadMs`), whatever the stream's length.
 * An event too old for the ring is not counted (and is counted in `late`); an event ahead
 * of the newest bucket moves the ring forward, recycling the buckets that fall out.
 */

export interface MergeableState<S> {
  /** A fresh, empty state. */
  empty(): S;
  /** A new state holding both (must not modify its arguments). */
  merge(a: S, b: S): S;
}

export interface SlidingWindowOptions {
  /** Width of one bucket in milliseconds. */
  bucketMs: number;
  /** Number of full buckets the window covers: a read spans buckets * bucketMs and the part of one more bucket. */
  buckets: number;
  /**
   * How far ahead of the clock the window is read by (`read(now)`) an event may be stamped
   * (default 0). The ring keeps that many milliseconds of buckets more, so such an event
   * never takes the slot of a bucket that a read at `now` still covers.
   */
  aheadMs?: number;
}

export class SlidingWindow<S> {
  readonly bucketMs: number;
  /** Full buckets a read covers (besides the one holding `now`). */
  readonly size: number;
  /** Slots of the ring: the window's buckets, the current one, and the buckets kept ahead. */
  private readonly slotCount: number;
  private readonly states: S[];
  /** The bucket number (floor(ts / bucketMs)) each slot holds, or -Infinity when never used. */
  private readonly slots: number[];
  private newest = -Infinity;
  /** Events that arrived too old for the ring (older than any window still read). */
  late = 0;

  constructor(
    private readonly kind: MergeableState<S>,
    options: SlidingWindowOptions,
  ) {
    if (!(options.bucketMs > 0) || !Number.isFinite(options.bucketMs))
      throw new RangeError(`bucketMs must be > 0, got ${options.bucketMs}`);
    if (!Number.isInteger(options.buckets) || options.buckets < 1)
      throw new RangeError(`buckets must be a positive integer, got ${options.buckets}`);
    const aheadMs = options.aheadMs ?? 0;
    if (!(aheadMs >= 0) || !Number.isFinite(aheadMs)) throw new RangeError(`aheadMs must be >= 0, got ${aheadMs}`);
    this.bucketMs = options.bucketMs;
    this.size = options.buckets;
    // An event at most aheadMs after `now` lands at most ceil(aheadMs / bucketMs) buckets after now's.
    this.slotCount = this.size + 1 + Math.ceil(aheadMs / this.bucketMs);
    this.states = Array.from({ length: this.slotCount }, () => kind.empty());
    this.slots = new Array<number>(this.slotCount).fill(-Infinity);
  }

  /**
   * The state of the bucket for event time `ts` (epoch ms), to update in place; undefined
   * when the event is too old for the ring.
   */
  at(ts: number): S | undefined {
    const bucket = Math.floor(ts / this.bucketMs);
    if (bucket > this.newest) this.newest = bucket;
    if (bucket <= this.newest - this.slotCount) {
      this.late++;
      return undefined;
    }
    const slot = ((bucket % this.slotCount) + this.slotCount) % this.slotCount;
    if (this.slots[slot] !== bucket) {
      this.slots[slot] = bucket;
      this.states[slot] = this.kind.empty();
    }
    return this.states[slot];
  }

  /**
   * The merged state of the window ending at `now` (default: the newest event): the bucket
   * holding `now` and the `buckets` before it. Events stamped after `now` are not in it.
   * `now` should not be earlier than the newest event less `aheadMs`: buckets recycled
   * since are gone.
   */
  read(now?: number): S {
    const last = now === undefined ? this.newest : Math.floor(now / this.bucketMs);
    let result = this.kind.empty();
    for (let slot = 0; slot < this.slotCount; slot++) {
      const bucket = this.slots[slot] as number;
      if (bucket >= last - this.size && bucket <= last) result = this.kind.merge(result, this.states[slot] as S);
    }
    return result;
  }
}
