/**
 * Resident memory of each process, sampled through a run, and the growth after warm-up.
 *
 * The bound: after warm-up, the lowest RSS among the last third of the samples may exceed
 * the lowest among the first third by at most max(FLOOR, SHARE of that first low). The lows
 * are the floors between garbage collections: memory that is retained (a leak) raises the
 * floor, while a collector that lets garbage pile up before a full collection only raises
 * the peaks (a heap growing for a minute and dropping is not a leak). A floor on the bound,
 * because V8 sizes its heap in steps of megabytes whatever the leak.
 */
import type { ServiceProcess } from './processes.js';

export const GROWTH_FLOOR_BYTES = 32 * 1024 * 1024;
export const GROWTH_SHARE = 0.2;

const MiB = 1024 * 1024;

interface Series {
  process: ServiceProcess;
  samples: { at: number; rss: number }[];
}

export interface Growth {
  label: string;
  samples: number;
  /** The lowest RSS of the first and of the last third after warm-up, bytes. */
  baseline: number;
  final: number;
  growth: number;
  bound: number;
  /** Least-squares slope after warm-up, bytes per minute. */
  slopePerMinute: number;
  peak: number;
  ok: boolean;
}

export class MemorySampler {
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | null = null;
  readonly startedAt = Date.now();

  constructor(processes: ServiceProcess[]) {
    for (const process of processes) this.series.set(process.label, { process, samples: [] });
  }

  sample(): void {
    const at = Date.now();
    for (const series of this.series.values()) {
      const rss = series.process.rss();
      if (rss !== null) series.samples.push({ at, rss });
    }
  }

  start(intervalMs: number): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
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
      const baseline = after.length ? Math.min(...after.slice(0, third).map((s) => s.rss)) : NaN;
      const final = after.length ? Math.min(...after.slice(-third).map((s) => s.rss)) : NaN;
      const bound = Math.max(GROWTH_FLOOR_BYTES, GROWTH_SHARE * baseline);
      const n = after.length;
      const meanT = after.reduce((a, s) => a + s.at, 0) / n;
      const meanR = after.reduce((a, s) => a + s.rss, 0) / n;
      const cov = after.reduce((a, s) => a + (s.at - meanT) * (s.rss - meanR), 0);
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
        ok: n >= 5 && growth <= bound,
      };
    });
  }
}

export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

export function describeGrowth(g: Growth): string {
  return (
    `${g.label}: ${mib(g.baseline)} -> ${mib(g.final)} (${g.growth >= 0 ? '+' : ''}${mib(g.growth)}, bound ${mib(g.bound)}; ` +
    `slope ${(g.slopePerMinute / MiB).toFixed(2)} MiB/min; peak ${mib(g.peak)}; ${g.samples} samples after warm-up)`
  );
}
