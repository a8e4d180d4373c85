/**
 * A sliding window over event time as a fixed ring of time buckets (e.g. 24 buckets of one
 * hour for a 24 h window): each bucket holds a mergeable state, and a read merges the
 * buckets still inside the window. Memory is `buckets` states, whatever the stream's length.
 * An event older than the window is not counted (and is counted in `late`); an event ahead
 * of the newest bucket moves the window forward, recycling the buckets that fall out.
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
  /** Number of buckets: the window covers buckets * bucketMs. */
  buckets: number;
}

export class SlidingWindow<S> {
  readonly bucketMs: number;
  readonly size: number;
  private readonly states: S[];
  /** The bucket number (floor(ts / bucketMs)) each slot holds, or -Infinity when never used. */
  private readonly slots: number[];
  private newest = -Infinity;
  /** Events that arrived older than the window. */
  late = 0;

  constructor(
    private readonly kind: MergeableState<S>,
    options: SlidingWindowOptions,
  ) {
    if (!(options.bucketMs > 0) || !Number.isFinite(options.bucketMs))
      throw new RangeError(`bucketMs must be > 0, got ${options.bucketMs}`);
    if (!Number.isInteger(options.buckets) || options.buckets < 1)
      throw new RangeError(`buckets must be a positive integer, got ${options.buckets}`);
    this.bucketMs = options.bucketMs;
    this.size = options.buckets;
    this.states = Array.from({ length: this.size }, () => kind.empty());
    this.slots = new Array<number>(this.size).fill(-Infinity);
  }

  /**
   * The state of the bucket for event time `ts` (epoch ms), to update in place; undefined
   * when the event is older than the window.
   */
  at(ts: number): S | undefined {
    const bucket = Math.floor(ts / this.bucketMs);
    if (bucket > this.newest) this.newest = bucket;
    if (bucket <= this.newest - this.size) {
      this.late++;
      return undefined;
    }
    const slot = ((bucket % this.size) + this.size) % this.size;
    if (this.slots[slot] !== bucket) {
      this.slots[slot] = bucket;
      this.states[slot] = this.kind.empty();
    }
    return this.states[slot];
  }

  /**
   * The merged state of the buckets inside the window ending at `now` (default: the newest
   * event). `now` should not be earlier than the newest event: buckets recycled since are gone.
   */
  read(now?: number): S {
    const last = now === undefined ? this.newest : Math.floor(now / this.bucketMs);
    let result = this.kind.empty();
    for (let slot = 0; slot < this.size; slot++) {
      const bucket = this.slots[slot] as number;
      if (bucket > last - this.size && bucket <= last) result = this.kind.merge(result, this.states[slot] as S);
    }
    return result;
  }
}
