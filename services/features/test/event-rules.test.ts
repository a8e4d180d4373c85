/**
 * The event-time rules (decode.ts, watermark.ts) against a brute-force reference, on seeded
 * random streams of three partitions: on-time, delayed and late events, events ahead of the
 * time their record was logged (within the bound and years ahead), records without a
 * timestamp or stamped with their event time, copies of an event on its partition and on
 * another, and ids used again later with a new time. The reference writes the rules down
 * directly, record by record:
 *
 *     logged(r)   = r.timestamp if 0 < r.timestamp <= readAt, else readAt
 *     invalid(r)  = r.time > logged(r) + MAX_EVENT_TIME_AHEAD_MS
 *     late(r)     = r.time < W - L                    (W: the partition's watermark before r)
 *     copy(r)     = an applied record of the partition before r has r's id and a time >= W - L
 *     W after r   = max(W, min(r.time, logged(r)))    (for every record neither invalid nor late)
 *     arrival(r)  = W after r
 *
 * and a feature read at `at` counts the applied events arrived by `at` whose tile (of the
 * feature's tile size T) starts in [floor((at - window) / T) * T, at]. The backfill must give
 * the reference's values, and the pipeline, fed each partition up to the records arrived by
 * each read time, in batches with flushes at random points and crashes (what was written is
 * kept, consumption resumes from the last commit), the backfill's.
 */
import { describe, expect, it } from 'vitest';
import { createRandom, fraud, MemoryOnlineStore, readFeatureValues, type LogRecord, type Random } from '@tributary/shared';
import { backfill, type FeatureQuery } from '../src/backfill.js';
import { MAX_EVENT_TIME_AHEAD_MS } from '@tributary/shared';
import { createFeatureProcessor, decodeCheckpoint } from '../src/feature-processor.js';

const example = fraud.fraudExample();
const source = example.sources[0]!;
const groups = example.groups.filter((g) => g.definition.source === source.name);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const L = 5 * MINUTE;
const START = Date.UTC(2026, 10, 30, 8, 0, 0) + 12_345;
const PARTITIONS = 3;
const USERS_PER_PARTITION = 4;
const MERCHANTS = 4;

type Kind =
  | 'on time'
  | 'delayed'
  | 'late'
  | 'ahead'
  | 'far ahead'
  | 'no timestamp'
  | 'stamped with its time'
  | 'copy'
  | 'copy on another partition'
  | 'id used again';

interface Generated {
  kind: Kind;
  id: string;
  user: string;
  merchant: string;
  amount: number;
  time: number;
  timestamp: number;
}

/** Each partition's records in offset order; the log's clock moves on by up to 15 s per record of a partition. */
function generate(seed: number, perPartition: number): Generated[][] {
  const random = createRandom(seed);
  const partitions: Generated[][] = Array.from({ length: PARTITIONS }, () => []);
  const clocks = partitions.map(() => START);
  const times = new Set<number>();
  /** Unique event times for new events: `last` has no order among equal times of different partitions. */
  const fresh = (time: number) => {
    while (times.has(time)) time++;
    times.add(time);
    return time;
  };
  let next = 0;
  while (partitions.some((records) => records.length < perPartition)) {
    const p = random.int(PARTITIONS);
    const records = partitions[p]!;
    if (records.length >= perPartition) continue;
    const c = (clocks[p]! += 1 + random.int(15_000));
    const user = `u${p}_${random.int(USERS_PER_PARTITION)}`;
    const event = (kind: Kind, time: number, timestamp = c): Generated => ({
      kind,
      id: `e${next++}`,
      user,
      merchant: `m${random.int(MERCHANTS)}`,
      amount: 1 + random.int(500),
      time: fresh(time),
      timestamp,
    });
    const roll = random.next();
    const recent = records.slice(-30);
    const others = partitions.filter((_, q) => q !== p).flatMap((list) => list.slice(-30));
    let record: Generated;
    if (roll < 0.5 || records.length === 0) record = event('on time', c - random.int(20_000));
    else if (roll < 0.6) record = event('delayed', c - random.int(L));
    else if (roll < 0.65) record = event('late', c - L - MINUTE - random.int(HOUR));
    else if (roll < 0.71) record = event('ahead', c + 1 + random.int(MAX_EVENT_TIME_AHEAD_MS));
    else if (roll < 0.73) {
      const time = c + MAX_EVENT_TIME_AHEAD_MS + 1 + random.int(3650 * DAY);
      record = event('far ahead', time);
      // Logged now, or by a producer that stamps records with their event time.
      if (random.next() < 0.5) record.timestamp = record.time;
    } else if (roll < 0.77) record = event('no timestamp', c - random.int(20_000), 0);
    else if (roll < 0.8) {
      record = event('stamped with its time', c - random.int(20_000));
      record.timestamp = record.time;
    } else if (roll < 0.86) record = { ...recent[random.int(recent.length)]!, kind: 'copy', timestamp: c };
    else if (roll < 0.9 && others.length > 0) {
      // A copy that went to another partition: another card holder's key there.
      record = { ...others[random.int(others.length)]!, kind: 'copy on another partition', user, timestamp: c };
    } else if (roll < 0.95) record = { ...event('id used again', c - random.int(20_000)), id: records[random.int(records.length)]!.id };
    else record = event('on time', c - random.int(20_000));
    records.push(record);
  }
  return partitions;
}

type Verdict = 'applied' | 'invalid' | 'late' | 'duplicate';

/** The rules written down directly (see the header): each record's verdict and arrival. */
function reference(partitions: Generated[][], readAt: number): { verdict: Verdict; arrival: number }[][] {
  return partitions.map((records) => {
    let watermark = -Infinity;
    const applied: Generated[] = [];
    return records.map((r) => {
      const logged = r.timestamp > 0 && r.timestamp <= readAt ? r.timestamp : readAt;
      let verdict: Verdict;
      if (r.time > logged + MAX_EVENT_TIME_AHEAD_MS) verdict = 'invalid';
      else if (r.time < watermark - L) verdict = 'late';
      else {
        const copy = applied.some((a) => a.id === r.id && a.time >= watermark - L);
        watermark = Math.max(watermark, Math.min(r.time, logged));
        verdict = copy ? 'duplicate' : 'applied';
        if (!copy) applied.push(r);
      }
      return { verdict, arrival: watermark };
    });
  });
}

/** [feature, window, tile size, column]: tile sizes from the documented rule (the largest of 1m, 5m, 1h, 1d not above W / 6). */
const CHECKED: Record<string, [string, number, number, 'count' | 'amount'][]> = {
  user_id: [
    ['count_10m', 10 * MINUTE, MINUTE, 'count'],
    ['count_1h', HOUR, 5 * MINUTE, 'count'],
    ['count_24h', DAY, HOUR, 'count'],
    ['amount_sum_1h', HOUR, 5 * MINUTE, 'amount'],
    ['amount_sum_24h', DAY, HOUR, 'amount'],
  ],
  merchant_id: [
    ['count_1h', HOUR, 5 * MINUTE, 'count'],
    ['count_24h', DAY, HOUR, 'count'],
  ],
};

function referenceValues(events: Generated[], query: FeatureQuery): Record<string, number> | null {
  const mine = events.filter((e) => (query.entity === 'user_id' ? e.user : e.merchant) === query.id);
  if (mine.length === 0) return null;
  const values: Record<string, number> = {};
  for (const [name, windowMs, tileMs, column] of CHECKED[query.entity]!) {
    const first = Math.floor((query.at - windowMs) / tileMs) * tileMs;
    const inWindow = mine.filter((e) => e.time >= first && Math.floor(e.time / tileMs) * tileMs <= query.at);
    values[name] = column === 'count' ? inWindow.length : inWindow.reduce((sum, e) => sum + e.amount, 0);
  }
  return values;
}

const logRecords = (partitions: Generated[][]): LogRecord[][] =>
  partitions.map((records, partition) =>
    records.map((r, offset) => ({
      topic: source.topic,
      partition,
      offset: String(offset),
      key: r.user,
      value: Buffer.from(
        JSON.stringify({
          event_id: r.id,
          user_id: r.user,
          merchant_id: r.merchant,
          amount: r.amount,
          currency: 'USD',
          country: r.amount % 3 === 0 ? 'FR' : 'US',
          channel: 'web',
          ts: r.time,
        }),
      ),
      timestamp: r.timestamp,
      headers: {},
    })),
  );

/**
 * The pipeline fed each partition up to the records arrived by each read time, in random
 * batches, flushing (and committing) at random points; sometimes it crashes after writing but
 * before committing, and a new one resumes from the commits. The features read at each time.
 */
async function online(records: LogRecord[][], arrivals: number[][], readTimes: number[], random: Random, queries: FeatureQuery[]) {
  let now = START;
  const store = new MemoryOnlineStore(() => now);
  const start = () => createFeatureProcessor({ store, source, groups, allowedLatenessMs: L, clock: () => now, confirmsCommits: true });
  let processor = start();
  const checkpoints = records.map(() => ({ offset: null as string | null, metadata: null as string | null }));
  const cursors = records.map(() => 0);
  records.forEach((_, p) => processor.open(source.topic, p, -Infinity));
  const commit = async () => {
    const { commits } = await processor.flush();
    processor.committed(commits);
    for (const c of commits) checkpoints[c.partition] = { offset: c.offset, metadata: c.metadata ?? null };
  };
  let crashes = 0;
  const feed = async (at: number) => {
    for (let p = 0; p < records.length; p++) {
      let end = cursors[p]!;
      while (end < records[p]!.length && arrivals[p]![end]! <= at) end++;
      while (cursors[p]! < end) {
        const batch = records[p]!.slice(cursors[p], Math.min(end, cursors[p]! + 1 + random.int(40)));
        cursors[p]! += batch.length;
        await processor.process({ topic: source.topic, partition: p, records: batch });
        const roll = random.next();
        if (roll < 0.3) await commit();
        else if (roll < 0.4) await processor.flush();
      }
    }
  };
  const served: Record<string, Record<string, unknown>>[] = [];
  for (const at of readTimes) {
    now = at;
    await feed(at);
    if (random.next() < 0.3) {
      // A crash: what was written stays; consumption resumes from the last commits.
      if (random.next() < 0.5) await processor.flush();
      crashes++;
      processor = start();
      records.forEach((_, p) => {
        const { offset, metadata } = checkpoints[p]!;
        processor.open(source.topic, p, decodeCheckpoint(metadata), offset);
        cursors[p] = offset === null ? 0 : Number(offset);
      });
      await feed(at);
    }
    await commit();
    for (const query of queries.filter((q) => q.at === at)) {
      const group = groups.find((g) => g.entity === query.entity)!;
      const [fields] = await store.read([{ group: group.id, entity: query.entity, id: query.id }]);
      served.push({ [group.definition.name]: readFeatureValues(group, fields ?? null, at).values });
    }
  }
  return { served, crashes };
}

const SEEDS = [1, 2, 3, 4];

describe('late events, events ahead and duplicates: the pipeline and the backfill against the rules written down', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}`, { timeout: 60_000 }, async () => {
      const generated = generate(seed, 500);
      // The backfill reads the log an hour after it was last written to (a producer's stamps years ahead aside).
      const readAt = Math.max(...generated.flat().map((r) => (r.kind === 'far ahead' ? 0 : r.timestamp))) + HOUR;
      const decisions = reference(generated, readAt);
      // The streams are adversarial: every kind of record is there, and each verdict is taken.
      const kinds = new Set(generated.flat().map((r) => r.kind));
      expect(kinds.size, [...kinds].join()).toBe(10);
      const verdicts = decisions.flat().map((d) => d.verdict);
      for (const verdict of ['applied', 'invalid', 'late', 'duplicate'] as const) expect(verdicts).toContain(verdict);
      const applied = generated.flatMap((records, p) => records.filter((_, i) => decisions[p]![i]!.verdict === 'applied'));
      expect(applied.filter((r) => r.kind === 'ahead').length).toBeGreaterThan(3);
      expect(applied.filter((r) => r.kind === 'id used again').length).toBeGreaterThan(0);
      expect(applied.filter((r) => r.kind === 'copy on another partition').length).toBeGreaterThan(0);

      const end = Math.max(...decisions.flat().map((d) => d.arrival));
      const readTimes = Array.from({ length: 12 }, (_, k) => START + Math.round(((k + 1) * (end - START)) / 12));
      // Reads a few seconds into a tile too: events ahead of the read in its tile count.
      readTimes.push(...readTimes.slice(0, 4).map((at) => Math.floor(at / MINUTE) * MINUTE + 7_000));
      readTimes.sort((a, b) => a - b);
      const ids = {
        user_id: Array.from({ length: PARTITIONS * USERS_PER_PARTITION }, (_, i) => `u${i % PARTITIONS}_${Math.floor(i / PARTITIONS)}`),
        merchant_id: Array.from({ length: MERCHANTS }, (_, i) => `m${i}`),
      };
      const queries: FeatureQuery[] = readTimes.flatMap((at) =>
        Object.entries(ids).flatMap(([entity, list]) => list.map((id) => ({ entity, id, at }))),
      );
      const records = logRecords(generated);
      const offline = backfill({ source, groups, allowedLatenessMs: L, partitions: records, queries, readAt });

      const counts = { late: 0, invalid: 0, duplicate: 0 };
      for (const verdict of verdicts) if (verdict !== 'applied') counts[verdict]++;
      expect([offline.rejected.late, offline.rejected.invalid, offline.duplicates]).toEqual([
        counts.late,
        counts.invalid,
        counts.duplicate,
      ]);
      const problems: string[] = [];
      queries.forEach((query, q) => {
        const arrived = generated.flatMap((list, p) =>
          list.filter((_, i) => decisions[p]![i]!.verdict === 'applied' && decisions[p]![i]!.arrival <= query.at),
        );
        const expected = referenceValues(arrived, query);
        const group = groups.find((g) => g.entity === query.entity)!;
        const row = offline.rows[q]!.features[group.definition.name]!;
        for (const [name] of CHECKED[query.entity]!) {
          const value = expected === null ? null : expected[name];
          if (row[name] !== value)
            problems.push(`${query.entity} ${query.id} at ${query.at}: ${name} backfill ${row[name]} vs rules ${value}`);
        }
      });
      expect(problems.slice(0, 10), `${problems.length} differences`).toEqual([]);

      const arrivals = decisions.map((list) => list.map((d) => d.arrival));
      const { served, crashes } = await online(records, arrivals, readTimes, createRandom(seed * 31), queries);
      expect(crashes).toBeGreaterThan(0);
      served.forEach((values, q) => {
        for (const [group, features] of Object.entries(values)) {
          for (const [name, value] of Object.entries(features)) {
            const other = offline.rows[q]!.features[group]![name];
            const same =
              typeof value === 'number' && typeof other === 'number'
                ? Math.abs(value - other) <= 1e-9 * Math.max(1, Math.abs(value))
                : value === other;
            if (!same)
              problems.push(`${JSON.stringify(queries[q])} ${group}.${name}: online ${String(value)} vs backfill ${String(other)}`);
          }
        }
      });
      expect(problems.slice(0, 10), `${problems.length} differences`).toEqual([]);
    });
  }
});
