/**
 * The backfill CLI's inputs: a query line is a JSON object with an entity, an id and a time,
 * a queries file holds at least one, and a source whose events cannot be used is told apart
 * from a topic that gave none (missing or empty).
 */
import { textLines } from '@tributary/shared';
import { describe, expect, it } from 'vitest';
import type { BackfillResult } from '../src/backfill.js';
import { InputError, parseQueries, unusableSource } from '../src/backfill-input.js';

const queries = (text: string) => parseQueries(textLines(text), 'q.ndjson');

describe('parseQueries', () => {
  it('reads each query line, named by its line number when it is not a query', async () => {
    await expect(
      queries('{"entity":"user_id","id":"u1","at":1}\n\n{"entity":"user_id","id":"u2","at":"1970-01-01T00:00:00.002Z"}\n'),
    ).resolves.toEqual([
      { entity: 'user_id', id: 'u1', at: 1 },
      { entity: 'user_id', id: 'u2', at: 2 },
    ]);
    for (const line of ['["user_id","u1",1]', '[]', '"u1"', 'null', '7']) {
      await expect(queries(`{"entity":"user_id","id":"u1","at":1}\n${line}\n`)).rejects.toThrow(
        new InputError('q.ndjson:2: a query must be a JSON object'),
      );
    }
  });

  it('refuses a file without a query (empty, or blank lines only)', async () => {
    for (const text of ['', '\n  \n\n']) await expect(queries(text)).rejects.toThrow(new InputError('no queries in q.ndjson'));
  });
});

describe('unusableSource', () => {
  const result = (accepted: number, invalid = 0): BackfillResult => ({
    rows: [],
    accepted,
    duplicates: 0,
    rejected: { late: 0, malformed: 0, invalid },
  });

  it('says a topic that gave no record does not exist or is empty, and asks of refused events whether they are the source’s', () => {
    expect(unusableSource('transactions', result(3), 'nosuchtopic')).toBeNull();
    expect(unusableSource('transactions', result(0), 'nosuchtopic')).toBe(
      'topic "nosuchtopic" does not exist or is empty: no events of source "transactions" were given: their features would be their defaults in every row',
    );
    expect(unusableSource('transactions', result(0), undefined)).toBe(
      'no events of source "transactions" were given: their features would be their defaults in every row',
    );
    for (const topic of ['labels', undefined]) {
      expect(unusableSource('transactions', result(0, 2), topic)).toMatch(
        /^none of the 2 events of source "transactions" could be applied .*: are they events of transactions\?$/,
      );
    }
  });
});
