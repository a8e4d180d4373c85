/**
 * The backfill CLI's inputs: its queries, and what it says of a source whose events cannot
 * be used.
 */
import { parseEventTime, type TextLine } from '@tributary/shared';
import { unusableEvents, type BackfillResult, type FeatureQuery } from './backfill.js';

/** An input that cannot be used (a file, a query line, the events): exit 1. */
export class InputError extends Error {}

/** The queries of a file, each line checked (the first bad one named by its line number), at least one; all kept, to be answered in time order. */
export async function parseQueries(lines: AsyncIterable<TextLine>, file: string): Promise<FeatureQuery[]> {
  const queries: FeatureQuery[] = [];
  for await (const line of lines) {
    const where = `${file}:${line.number}`;
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch (error) {
      throw new InputError(`${where}: invalid JSON: ${(error as Error).message}`);
    }
    const q = value as Record<string, unknown>;
    if (typeof q !== 'object' || q === null || Array.isArray(q)) throw new InputError(`${where}: a query must be a JSON object`);
    if (typeof q.entity !== 'string' || q.entity === '') throw new InputError(`${where}: "entity" must be a non-empty string`);
    if (typeof q.id !== 'string' || q.id === '') throw new InputError(`${where}: "id" must be a non-empty string`);
    const at = parseEventTime(q.at);
    if (at === null) throw new InputError(`${where}: "at" must be epoch milliseconds (up to 8.64e15) or an RFC 3339 date-time with a zone`);
    queries.push({ entity: q.entity, id: q.id, at });
  }
  // An empty file (a failed export) would give an empty output, as if every query had been answered.
  if (queries.length === 0) throw new InputError(`no queries in ${file}`);
  return queries;
}

/** Why the events of a source read from `topic` (or a file) cannot be used, or null; a topic that gave none does not exist or is empty. */
export function unusableSource(name: string, result: BackfillResult, topic: string | undefined): string | null {
  const unusable = unusableEvents(result, `events of source "${name}"`);
  if (unusable === null) return null;
  const { malformed, invalid, late } = result.rejected;
  if (malformed + invalid + late > 0) return `${unusable}: are they events of ${name}?`;
  return topic === undefined ? unusable : `topic "${topic}" does not exist or is empty: ${unusable}`;
}
