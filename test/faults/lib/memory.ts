/**
 * The memory of each process, sampled through a run, and its growth after warm-up.
 *
 * The processes are started with their inspector open (`inspect`): each sample first collects
 * a process's garbage (lib/inspector.ts), then reads its RSS and its retained memory: the V8 heap in use
 * after the collection plus the memory of its objects held outside the heap (Buffers). The
 * bound is on the retained memory: what the process holds, which a leak raises and garbage
 * does not. An RSS alone rose by 46–68 MiB within a minute of CI's soak and was not always
 * given back before its end (2026-12-02), which no bound on it can tell from a leak.
 *
 * The bound: after warm-up, the lowest retained memory among the last third of the samples
 * may exceed the lowest among the first third by at most max(FLOOR, SHARE of that first low).
 * The RSS's growth and peak are reported beside it.
 *
 * Memory a process accounts for itself, read with each sample (the feature pipeline's estimate of
 * its cache of entity states, bounded by FEATURE_CACHE_MB), is taken off first: a short run
 * meets a new entity with almost every event, so that cache grows all through it (4,500
 * transactions: ~9 MiB), by design and up to its bound, not by a leak.
 */
import { retainedMemory } from './inspector.js';
import type { ServiceProcess } from './processes.js';

/** The bound on retained memory: the heap after a full collection moves by a few MiB at most without a leak. */
export const RETAINED_FLOOR_BYTES = 8 * 1024 * 1024;
export const RETAINED_SHARE = 0.1;

const MiB = 1024 * 1024;

interface Sample {
  at: number;
  rss: number;
  /** Heap in use plus external memory after a full collection, bytes. */
  retained: number;
  accounted: number;
}

interface Series {
  process: ServiceProcess;
  /** Bytes the process accounts for (a bounded cache), read with each sample. */
  accounted?: () => Promise<number>;
  samples: Sample[];
}

export interface Growth {
  label: string;
  samples: number;
  /** The lowest retained memory, less the memory accounted for, of the first and of the last third after warm-up, bytes. */
  baseline: number;
  final: number;
  growth: number;
  bound: number;
  /** Least-squares slope of the retained memory after warm-up, bytes per minute. */
  slopePerMinute: number;
  /** The highest RSS of the whole run, bytes. */
  peak: number;
  /** The RSS's growth after warm-up, lows of the first and last thirds (reported, not judged). */
  rssGrowth: number;
  /** The memory the process accounted for at the last sample, bytes (0: none). */
  accounted: number;
  ok: boolean;
}

export class MemorySampler {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;
  readonly startedAt = Date.now();

  /** `accounted`: by process label, how to read the bytes of its memory it accounts for. */
  constructor(processes: ServiceProcess[], accounted: Record<string, () => Promise<number>> = {}) {
    for (const process of processes) this.series.set(process.label, { process, accounted: accounted[process.label], samples: [] });
  }

  /**
   * One sample of every process, one after the other (a collection each, not all at once); a
   * process whose retained or accounted memory cannot be read is not sampled this time.
   */
  async sample(): Promise<void> {
    for (const series of this.series.values()) {
      const { process } = series;
      if (!process.inspectorUrl) continue;
      const retained = await retainedMemory(process.inspectorUrl).then(
        (memory) => memory.heapUsed + memory.external,
        () => NaN,
      );
      const at = Date.now();
      const rss = process.rss();
      const accounted = series.accounted ? await series.accounted().catch(() => NaN) : 0;
      if (rss !== null && Number.isFinite(accounted) && Number.isFinite(retained)) series.samples.push({ at, rss, retained, accounted });
    }
  }

  /** Samples every `intervalMs`; a sample that outlasts the interval delays the next. */
  start(intervalMs: number): void {
    const next = () => {
      this.sampling = this.sample().finally(() => {
        if (this.timer) this.timer = setTimeout(next, intervalMs);
      });
    };
    this.timer = setTimeout(next, 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sampling;
  }

  /** Every sample, by process: seconds since the start, RSS and retained memory in MiB. */
  trace(): Record<string, [number, number, number][]> {
    const round = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
    return Object.fromEntries(
      [...this.series.entries()].map(([label, { samples }]) => [
        label,
        samples.map((s): [number, number, number] => [Math.round((s.at - this.startedAt) / 1000), round(s.rss), round(s.retained)]),
      ]),
    );
  }

  /** Growth per process over the samples taken `warmupMs` or more after the sampler started. */
  growth(warmupMs: number): Growth[] {
    return [...this.series.entries()].map(([label, { samples }]) => {
      const after = samples.filter((s) => s.at - this.startedAt >= warmupMs);
      const judged = lowsGrowth(after, (s) => s.retained - s.accounted);
      const bound = Math.max(RETAINED_FLOOR_BYTES, RETAINED_SHARE * judged.baseline);
      return {
        label,
        samples: after.length,
        ...judged,
        bound,
        peak: Math.max(...samples.map((s) => s.rss)),
        rssGrowth: lowsGrowth(after, (s) => s.rss - s.accounted).growth,
        accounted: samples.at(-1)?.accounted ?? 0,
        ok: after.length >= 5 && judged.growth <= bound,
      };
    });
  }
}

/** The lows of the first and last thirds of `samples` by `value`, their difference, and the least-squares slope per minute. */
function lowsGrowth(samples: Sample[], value: (s: Sample) => number) {
  const third = Math.max(1, Math.floor(samples.length / 3));
  const baseline = samples.length ? Math.min(...samples.slice(0, third).map(value)) : NaN;
  const final = samples.length ? Math.min(...samples.slice(-third).map(value)) : NaN;
  const n = samples.length;
  const meanT = samples.reduce((a, s) => a + s.at, 0) / n;
  const meanV = samples.reduce((a, s) => a + value(s), 0) / n;
  const cov = samples.reduce((a, s) => a + (s.at - meanT) * (value(s) - meanV), 0);
  const varT = samples.reduce((a, s) => a + (s.at - meanT) ** 2, 0);
  return { baseline, final, growth: final - baseline, slopePerMinute: varT > 0 ? (cov / varT) * 60_000 : 0 };
}

export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

const signed = (bytes: number) => `${bytes >= 0 ? '+' : ''}${mib(bytes)}`;

export function describeGrowth(g: Growth): string {
  return (
    `${g.label}: retained after a full collection ${mib(g.baseline)} -> ${mib(g.final)} ` +
    `(${signed(g.growth)}, bound ${mib(g.bound)}; slope ${(g.slopePerMinute / MiB).toFixed(2)} MiB/min; ` +
    `RSS ${signed(g.rssGrowth)}, peak RSS ${mib(g.peak)}; ${g.samples} samples after warm-up` +
    `${g.accounted > 0 ? `; less ${mib(g.accounted)} of bounded cache at the end` : ''})`
  );
}
