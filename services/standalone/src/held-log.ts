/**
 * The log lines of `npm start` before its listening line: info and debug lines wait for it, so
 * that the first line a user reads says where the service listens; warnings and errors are
 * written at once (a start that is slow or fails says why).
 */
export function heldLog(out: { write(text: string): unknown } = process.stdout) {
  let held: string[] | null = [];
  return {
    write(line: string): void {
      if (held && !urgent(line)) held.push(line);
      else out.write(line);
    },
    /** Writes the lines held, and every line from now on. */
    release(): void {
      const lines = held ?? [];
      held = null;
      for (const line of lines) out.write(line);
    },
  };
}

/** A pino line of level warn (40) or above; a line that is not pino's is not held either. */
function urgent(line: string): boolean {
  return Number(/^\{"level":(\d+)/.exec(line)?.[1] ?? 60) >= 40;
}
