/** What the command-line tools that replay events (training-set backfill, batch-predict) say of each source's replay. */
import type { ReplaySummary } from './point-in-time.js';

/** A share of a source's events dropped as late above which a warning is printed (online, late events are rare). */
const LATE_SHARE_WARNING = 0.05;

const recordsOf = ({ accepted, rejected }: ReplaySummary) => accepted + rejected.late + rejected.invalid + rejected.malformed;

/** One summary line per source: its records, those accepted (and of them with a duplicate event id), late, invalid, malformed. */
export function replayLines(replays: ReplaySummary[]): string[] {
  return replays.map(
    (replay) =>
      `  replay of ${replay.source}: ${recordsOf(replay)} records, ${replay.accepted} accepted (${replay.duplicates} with a duplicate event id), ` +
      `${replay.rejected.late} late, ${replay.rejected.invalid} invalid, ${replay.rejected.malformed} malformed`,
  );
}

/** Loud warnings, led by the tool's name, for sources many of whose events were late: their features miss those events. */
export function lateWarnings(tool: string, replays: ReplaySummary[]): string[] {
  return replays.flatMap((replay) => {
    const { late } = replay.rejected;
    const records = recordsOf(replay);
    if (late === 0 || late < records * LATE_SHARE_WARNING) return [];
    return [
      `${tool}: WARNING: ${late} of the ${records} events of source "${replay.source}" (${((100 * late) / records).toFixed(0)}%) ` +
        `were late for their partition's watermark and are missing from every feature. Is the input in arrival order? An events ` +
        `file is replayed in file order as one partition: sort it by when the events were published (not by entity), or raise --allowed-lateness.\n`,
    ];
  });
}
