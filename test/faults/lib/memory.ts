/**
 * Resident memory of each process, sampled through a run, and the growth after warm-up.
 *
 * The bound: after warm-up, the lowest RSS among the last third of the samples may exceed
 * the lowest among the first third by at most max(FLOOR, SHARE of that first low). The lows
 * are the floors between garbage collections: memory that is retained (a leak) raises the
 * floor, while a collector that lets garbage pile up before a full collection only raises
 * the peaks (a heap growing for a minute and dropping is not a leak). A floor on the bound,
 * because V8 sizes its heap in steps of megabytes whatever the leak.
 *
 * Memory a process accounts for itself, read with each sample (the feature pipeline's estimate of
 * its cache of entity states, bounded by FEATURE_CACHE_MB), is taken off its RSS first: a
 * short run meets a new entity with almost every event, so that cache grows all through it
 * (4,500 transactions: ~9 MiB), by design and up to its bound, not by a leak.
 */
import type { ServiceProcess } from './processes.js';

export const GROWTH_FLOOR_BYTES = 32 * 1024 * 1024;
export const GROWTH_SHARE = 0.2;

const MiB = 1024 * 1024;

interface Series {
  process: ServiceProcess;
  /** Bytes of the RSS the process accounts for (a bounded cache), read with each sample. */
  accounted?: () => Promise<number>;
  samples: { at: number; rss: number; accounted: number }[];
}

export interface Growth {
  label: string;
  samples: number;
  /** The lowest RSS, less the memory accounted for, of the first and of the last third after warm-up, bytes. */
  baseline: number;
  final: number;
  growth: number;
  bound: number;
  /** Least-squares slope after warm-up, bytes per minute. */
  slopePerMinute: number;
  peak: number;
  /** The memory the process accounted for at the last sample, bytes (0: none). */
  accounted: number;
  ok: boolean;
}

export class MemorySampler {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | null = null;
  readonly startedAt = Date.now();

  /** `accounted`: by process label, how to read the bytes of its RSS it accounts for. */
  constructor(processes: ServiceProcess[], accounted: Record<string, () => Promise<number>> = {}) {
    for (const process of processes) this.series.set(process.label, { process, accounted: accounted[process.label], samples: [] });
  }

  /** One sample of every process; one whose accounted memory cannot be read is not sampled this time. */
  async sample(): Promise<void> {
    const at = Date.now();
    await Promise.all(
      [...this.series.values()].map(async (series) => {
        const rss = series.process.rss();
        const accounted = series.accounted ? await series.accounted().catch(() => NaN) : 0;
        if (rss !== null && Number.isFinite(accounted)) series.samples.push({ at, rss, accounted });
      }),
    );
  }

  start(intervalMs: number): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Every sample, MiB by process, with the seconds since the start (for the results file). */
  trace(): Record<string, [number, number][]> {
    return Object.fromEntries(
      [...this.series.entries()].map(([label, { samples }]) => [
        label,
        samples.map((s): [number, number] => [Math.round((s.at - this.startedAt) / 1000), Math.round((s.rss / MiB) * 10) / 10]),
      ]),
    );
  }

  /** Growth per process over the samples taken `warmupMs` or more after the sampler started. */
  growth(warmupMs: number): Growth[] {
    return [...this.series.entries()].map(([label, { samples }]) => {
      const after = samples.filter((s) => s.at - this.startedAt >= warmupMs);
      const third = Math.max(1, Math.floor(after.length / 3));
      const own = (s: { rss: number; accounted: number }) => s.rss - s.accounted;
      const baseline = after.length ? Math.min(...after.slice(0, third).map(own)) : NaN;
      const final = after.length ? Math.min(...after.slice(-third).map(own)) : NaN;
      const bound = Math.max(GROWTH_FLOOR_BYTES, GROWTH_SHARE * baseline);
      const n = after.length;
      const meanT = after.reduce((a, s) => a + s.at, 0) / n;
      const meanR = after.reduce((a, s) => a + own(s), 0) / n;
      const cov = after.reduce((a, s) => a + (s.at - meanT) * (own(s) - meanR), 0);
      const varT = after.reduce((a, s) => a + (s.at - meanT) ** 2, 0);
      const growth = final - baseline;
      return {
        label,
        samples: n,
        baseline,
        final,
        growth,
        bound,
        slopePerMinute: varT > 0 ? (cov / varT) * 60_000 : 0,
        peak: Math.max(...samples.map((s) => s.rss)),
        accounted: samples.at(-1)?.accounted ?? 0,
        ok: n >= 5 && growth <= bound,
      };
    });
  }
}

export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

export function describeGrowth(g: Growth): string {
  return (
    `${g.label}: ${mib(g.baseline)} -> ${mib(g.final)} (${g.growth >= 0 ? '+' : ''}${mib(g.growth)}, bound ${mib(g.bound)}; ` +
    `slope ${(g.slopePerMinute / MiB).toFixed(2)} MiB/min; peak ${mib(g.peak)}; ${g.samples} samples after warm-up` +
    `${g.accounted > 0 ? `; RSS less ${mib(g.accounted)} of bounded cache at the end` : ''})`
  );
}
