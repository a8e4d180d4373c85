/**
 * Starts parts of a process at once: each joins its own consumer group, and after a crash each
 * join waits for the dead member's session to end, so one after another the waits add up. When
 * one fails to start, those that did are stopped before its error is returned (the caller gets
 * nothing to stop).
 */
export async function startTogether<T extends { stop(): Promise<void> }>(starting: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(starting);
  const failed = results.find((result) => result.status === 'rejected');
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  if (!failed) return started;
  await Promise.all(started.map((part) => part.stop().catch(() => undefined)));
  throw failed.reason;
}
