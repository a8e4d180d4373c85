import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  compileFeatureGroup,
  createRandom,
  fraud,
  MemoryOnlineStore,
  readFeatureValues,
  type CompiledFeatureGroup,
  type LogRecord,
} from '@tributary/shared';
import { backfill, eventReplay, streamedReplay, type FeatureQuery } from '../src/backfill.js';
import { createFeatureProcessor } from '../src/feature-processor.js';
import { transactionJson } from './transaction.js';

/** Each test runs the command-line tool several times, each a new Node process compiling its TypeScript: a guard against a hang, wide enough for a loaded CI machine. */
const CLI_TIMEOUT_MS = 120_000;

const example = fraud.fraudExample();
const source = example.sources[0]!;
const START = Date.UTC(2026, 10, 28, 8, 0, 0);
const LATENESS = 5 * 60_000;

interface Line {
  text: string;
  /** Event time, or null for a malformed line. */
  time: number | null;
}

/** Events in (mostly) time order over 3 hours: some out of order, some late, a few duplicated or malformed. */
function stream(seed: number, count: number): Line[] {
  const random = createRandom(seed);
  const lines: Line[] = [];
  for (let i = 0; i < count; i++) {
    let ts = START + Math.floor((i / count) * 3 * 3_600_000);
    if (random.next() < 0.1) ts -= random.int(LATENESS);
    if (random.next() < 0.02) ts -= LATENESS + random.int(3_600_000);
    const text = JSON.stringify({
      event_id: `e${i}`,
      user_id: `u${random.int(30)}`,
      merchant_id: `m${random.int(8)}`,
      amount: Math.round(random.next() * 1000) / 10,
      currency: 'USD',
      country: random.next() < 0.8 ? 'US' : 'FR',
      channel: 'web',
      ts,
    });
    lines.push({ text, time: ts });
    if (random.next() < 0.02) lines.push({ text, time: ts });
    if (random.next() < 0.01) lines.push({ text: '{"event_id": ', time: null });
  }
  return lines;
}

const records = (lines: Line[]): LogRecord[] =>
  lines.map((line, i) => ({
    topic: 'transactions',
    partition: 0,
    offset: String(i),
    key: null,
    value: Buffer.from(line.text),
    timestamp: 0,
    headers: {},
  }));

/**
 * What the pipeline serves at each query's time (queries in time order), each group of the query's entity fed by the
 * lines: fed the lines that arrived by then (those before the first one stamped after it), read from its store.
 * Returns those reads and the lines it was fed in all.
 */
async function served(groups: CompiledFeatureGroup[], lines: Line[], queries: FeatureQuery[]) {
  const all = records(lines);
  let now = START;
  const store = new MemoryOnlineStore(() => now);
  const processor = createFeatureProcessor({ store, groups, source, allowedLatenessMs: LATENESS, clock: () => now });
  processor.open('transactions', 0, -Infinity);
  const reads: Record<string, Record<string, number | string | null>>[] = [];
  let next = 0;
  for (const query of queries) {
    now = query.at;
    const batch: LogRecord[] = [];
    while (next < all.length && lines[next]!.time! <= query.at) batch.push(all[next++]!);
    if (batch.length > 0) await processor.process({ topic: 'transactions', partition: 0, records: batch });
    await processor.flush();
    const read: (typeof reads)[number] = {};
    for (const group of groups.filter((g) => g.entity === query.entity && g.definition.source === source.name)) {
      const [fields] = await store.read([{ group: group.id, entity: query.entity, id: query.id }]);
      read[group.definition.name] = readFeatureValues(group, fields ?? null, query.at).values;
    }
    reads.push(read);
  }
  return { reads, fed: all.slice(0, next), readAt: now };
}

describe('backfill', () => {
  it('gives at each timestamp what the pipeline served then (online/offline parity)', async () => {
    const lines = stream(5, 3000);
    const all = records(lines);
    // The online side: the pipeline consumes the stream as it arrives, in file order; the events
    // that have arrived by a read time are those up to the first one stamped after it. The records
    // have no log timestamps: they count as logged when the pipeline reads them, at the read time.
    let now = START;
    const store = new MemoryOnlineStore(() => now);
    const processor = createFeatureProcessor({ store, groups: example.groups, source, allowedLatenessMs: LATENESS, clock: () => now });
    processor.open('transactions', 0, -Infinity);
    const readTimes = Array.from({ length: 12 }, (_, k) => START + (k + 1) * 15 * 60_000 - 1);
    const queries: FeatureQuery[] = [];
    const online: Record<string, unknown>[] = [];
    let next = 0;
    for (const at of readTimes) {
      now = at;
      const batch: LogRecord[] = [];
      while (next < all.length && (lines[next]!.time === null || lines[next]!.time! <= at)) batch.push(all[next++]!);
      if (batch.length > 0) await processor.process({ topic: 'transactions', partition: 0, records: batch });
      await processor.flush();
      for (const [entity, ids] of [
        ['user_id', ['u0', 'u7', 'u29']],
        ['merchant_id', ['m1', 'm5']],
      ] as const) {
        for (const id of ids) {
          const group = example.groups.find((g) => g.definition.entity === entity)!;
          const [fields] = await store.read([{ group: group.id, entity, id }]);
          queries.push({ entity, id, at });
          online.push({ [group.definition.name]: readFeatureValues(group, fields ?? null, at).values });
        }
      }
    }
    // Offline: the backfill of the same stream answers the same (entity, time) questions.
    const result = backfill({ groups: example.groups, source, allowedLatenessMs: LATENESS, partitions: [all.slice(0, next)], queries });
    expect(result.rows.map((r) => r.features)).toEqual(online);
    expect(result.rejected.late).toBeGreaterThan(0);
    expect(result.rejected.malformed).toBeGreaterThan(0);
    // Not a vacuous comparison: the features changed over time.
    expect(new Set(online.map((o) => JSON.stringify(o))).size).toBeGreaterThan(20);
  });

  it('keeps the share of each partition apart, as the store does: `last` among equal times of two partitions reads alike', async () => {
    const event = (partition: number, offset: number, id: string, user: string, country: string, ts: number): LogRecord => ({
      topic: 'transactions',
      partition,
      offset: String(offset),
      key: user,
      value: Buffer.from(
        JSON.stringify({ event_id: id, user_id: user, merchant_id: 'm1', amount: 5, currency: 'USD', country, channel: 'web', ts }),
      ),
      timestamp: ts,
      headers: {},
    });
    // u1 in France and in Germany at the same millisecond, on two partitions; partition 0 arrives later.
    const partitions = [
      [event(0, 0, 'a', 'u2', 'US', START + 120_000), event(0, 1, 'b', 'u1', 'DE', START + 60_000)],
      [event(1, 0, 'c', 'u1', 'FR', START + 60_000)],
    ];
    const at = START + 180_000;
    const store = new MemoryOnlineStore(() => at);
    const processor = createFeatureProcessor({ store, groups: example.groups, source, allowedLatenessMs: LATENESS, clock: () => at });
    for (const [partition, records] of partitions.entries()) {
      processor.open('transactions', partition, -Infinity);
      await processor.process({ topic: 'transactions', partition, records });
    }
    await processor.flush();
    const user = example.groups.find((g) => g.definition.name === 'user_transactions')!;
    const [fields] = await store.read([{ group: user.id, entity: 'user_id', id: 'u1' }]);
    const online = readFeatureValues(user, fields ?? null, at).values;
    const offline = backfill({
      groups: example.groups,
      source,
      allowedLatenessMs: LATENESS,
      partitions,
      queries: [{ entity: 'user_id', id: 'u1', at }],
    });
    expect(offline.rows[0]!.features.user_transactions).toEqual(online);
    expect(online.count_24h).toBe(2);
  });

  it('answers queries asked a part at a time in time order, or back in time, as it answers them all at once', () => {
    const all = records(stream(9, 2000));
    const random = createRandom(4);
    const queries: FeatureQuery[] = Array.from({ length: 600 }, () => {
      const at = START + random.int(4 * 3_600_000);
      return random.next() < 0.5
        ? { entity: 'user_id', id: `u${random.int(30)}`, at }
        : { entity: 'merchant_id', id: `m${random.int(8)}`, at };
    });
    const replayOf = () => {
      const replay = eventReplay({ source, allowedLatenessMs: LATENESS });
      for (const record of all) replay.add(0, record);
      return replay;
    };
    const whole = replayOf().answer(example.groups, queries, true);
    // In parts of 50 in time order (equal times may straddle two parts), then one part back in time.
    const inOrder = [...queries].sort((a, b) => a.at - b.at);
    const replay = replayOf();
    const parts = Array.from({ length: inOrder.length / 50 }, (_, k) =>
      replay.answer(example.groups, inOrder.slice(k * 50, (k + 1) * 50), true),
    );
    expect(parts.flatMap((part) => part.rows)).toEqual(inOrder.map((query) => whole.rows[queries.indexOf(query)]));
    expect(parts.at(-1)).toMatchObject({ accepted: whole.accepted, duplicates: whole.duplicates, rejected: whole.rejected });
    const back = inOrder.slice(0, 50);
    expect(replay.answer(example.groups, back, true).rows).toEqual(back.map((query) => whole.rows[queries.indexOf(query)]));
    // Not vacuous: the features moved over time.
    expect(new Set(whole.rows.map((row) => JSON.stringify(row.features))).size).toBeGreaterThan(300);
  });

  it('answers queries given in advance as it reads the records, the partitions interleaved or one after another, as the replay that keeps every event does', () => {
    // Three partitions of the same kind of stream (out of order, late, duplicated, malformed), each in its own time.
    const streams = [1, 2, 3].map((seed) => stream(seed, 700));
    const partitions = streams.map(records);
    const random = createRandom(6);
    const eventTimes = streams.flat().flatMap((line) => (line.time === null ? [] : [line.time]));
    const queries: FeatureQuery[] = Array.from({ length: 500 }, () => {
      // Some at exactly an event's time (the event counts), the others anywhere, before the first event and after the last too.
      const at = random.next() < 0.3 ? eventTimes[random.int(eventTimes.length)]! : START - 600_000 + random.int(4 * 3_600_000);
      return random.next() < 0.5
        ? { entity: 'user_id', id: `u${random.int(30)}`, at }
        : { entity: 'merchant_id', id: `m${random.int(8)}`, at };
    });
    const kept = eventReplay({ source, allowedLatenessMs: LATENESS, readAt: START + 5 * 3_600_000 });
    partitions.forEach((records, partition) => records.forEach((record) => kept.add(partition, record)));
    const expected = kept.answer(example.groups, queries, true);

    const streamed = (order: [partition: number, record: LogRecord][]) => {
      const replay = streamedReplay({
        source,
        groups: example.groups,
        queries,
        partitions: 3,
        allowedLatenessMs: LATENESS,
        readAt: START + 5 * 3_600_000,
        keepStored: true,
      });
      for (const [partition, record] of order) replay.add(partition, record);
      return replay.finish();
    };
    const oneAfterAnother = partitions.flatMap((records, partition) => records.map((record): [number, LogRecord] => [partition, record]));
    const interleaved = [...oneAfterAnother].sort(([pa, a], [pb, b]) => Number(a.offset) - Number(b.offset) || pa - pb);
    expect(streamed(interleaved)).toEqual(expected);
    expect(streamed(oneAfterAnother)).toEqual(expected);
    // Not vacuous: the features moved over time, and each partition added its share.
    expect(new Set(expected.rows.map((row) => JSON.stringify(row.features))).size).toBeGreaterThan(200);
    expect(new Set(expected.rows.flatMap((row) => Object.values(row.stored ?? {}).flatMap((fields) => Object.keys(fields ?? {}))))).toEqual(
      new Set(['s0', 's1', 's2']),
    );
  });

  it("answers a query at its partition's watermark only once an event later in the partition could no longer arrive by then", () => {
    // b is out of order: it arrives when a does (the watermark stays at a's time), so a query at that time counts both.
    const lines: Line[] = [
      { text: transactionJson('a', START + 60_000, { user_id: 'u1' }), time: START + 60_000 },
      { text: transactionJson('b', START + 30_000, { user_id: 'u1' }), time: START + 30_000 },
      { text: transactionJson('c', START + 90_000, { user_id: 'u1' }), time: START + 90_000 },
    ];
    const queries: FeatureQuery[] = [{ entity: 'user_id', id: 'u1', at: START + 60_000 }];
    const replay = streamedReplay({
      source,
      groups: example.groups,
      queries,
      partitions: 1,
      allowedLatenessMs: LATENESS,
      readAt: START + 5 * 3_600_000,
    });
    for (const record of records(lines)) replay.add(0, record);
    expect(replay.finish().rows[0]!.features.user_transactions!.count_10m).toBe(2);
  });

  it('refuses a record of a partition the streamed replay was not told of', () => {
    const replay = streamedReplay({ source, groups: example.groups, queries: [], partitions: 1, allowedLatenessMs: LATENESS });
    expect(() => replay.add(1, records(stream(1, 1))[0]!)).toThrow("partition 1 is not one of the replay's 1");
  });

  it('reads as the pipeline over days longer than the ttl: what it forgets (tiles past every window, entities whose keys expired) changes no read', async () => {
    // Six days, users silent for three days (past the 2-day ttl) and back.
    const random = createRandom(11);
    const lines: Line[] = [];
    for (let hour = 0; hour < 6 * 24; hour++) {
      for (let k = 0; k < 20; k++) {
        const user = random.int(12);
        const day = hour / 24;
        if ((user < 6 && day >= 1 && day < 4) || (user >= 6 && day >= 2.5 && day < 5.5)) continue;
        // Out of order by up to 4 minutes, within the lateness.
        const ts = START + hour * 3_600_000 + k * 180_000 + random.int(240_000);
        const text = transactionJson(`e${hour}-${k}`, ts, {
          user_id: `u${user}`,
          merchant_id: `m${random.int(4)}`,
          amount: random.int(5000) / 10,
          country: random.next() < 0.8 ? 'US' : 'FR',
        });
        lines.push({ text, time: ts });
      }
    }
    const queries: FeatureQuery[] = [];
    for (let at = START + 3 * 3_600_000 - 1; at < START + 6 * 86_400_000; at += 3 * 3_600_000) {
      for (const id of ['u1', 'u4', 'u7', 'u10']) queries.push({ entity: 'user_id', id, at });
      queries.push({ entity: 'merchant_id', id: 'm2', at });
    }
    const { reads: online, fed, readAt } = await served(example.groups, lines, queries);
    // Read when the pipeline read the last of them (the records carry no log time): a later day of the six is no later than that.
    const result = backfill({ groups: example.groups, source, allowedLatenessMs: LATENESS, partitions: [fed], queries, readAt });
    expect(result.rows.map((r) => r.features)).toEqual(online);
    // Not vacuous: the silent users' keys expired (counts at zero between bursts), and they came back.
    const counts = result.rows.filter((r) => r.id === 'u1').map((r) => r.features.user_transactions!.count_24h);
    expect(counts.filter((c) => c === 0).length).toBeGreaterThan(3);
    expect(counts.at(-1)).toBeGreaterThan(0);
  });

  it('reads a window whose tiles reach back as far as its ttl as the pipeline does, after a silence past the window', async () => {
    // A read of a 24 h window takes whole 1 h tiles, reaching back up to 25 h (the shortest ttl the group may have):
    // u1's first tile counts again with its second event, 24 h 10 min later, so the sweep must not have forgotten u1.
    const group = compileFeatureGroup(
      {
        name: 'user_daily',
        version: 1,
        source: 'transactions',
        entity: 'user_id',
        aggregations: [{ column: '*', op: 'count', windows: ['24h'] }],
        ttl: '25h',
        defaults: {},
      },
      example.sources,
    );
    const H = 3_600_000;
    const M = 60_000;
    const events = [
      { id: 'a', user: 'u1', ts: START + 10 * H + 30 * M },
      // Past u1's window: a query then walks the states for the entities whose keys expired.
      { id: 'b', user: 'u2', ts: START + 34 * H + 35 * M },
      { id: 'c', user: 'u1', ts: START + 34 * H + 40 * M },
    ];
    const lines: Line[] = events.map(({ id, user, ts }) => ({ text: transactionJson(id, ts, { user_id: user }), time: ts }));
    const queries: FeatureQuery[] = [
      { entity: 'user_id', id: 'u1', at: START + 11 * H },
      { entity: 'user_id', id: 'u2', at: START + 34 * H + 36 * M },
      { entity: 'user_id', id: 'u1', at: START + 34 * H + 50 * M },
    ];
    const { reads: online, fed, readAt } = await served([group], lines, queries);
    const result = backfill({ groups: [group], source, allowedLatenessMs: LATENESS, partitions: [fed], queries, readAt });
    expect(result.rows.map((r) => r.features.user_daily)).toEqual(online.map((read) => read.user_daily));
    expect(online.map((read) => read.user_daily!.count_24h)).toEqual([1, 1, 2]);
  });

  it('is empty for an entity before its first event, and after its ttl', () => {
    const text = JSON.stringify({
      event_id: 'a',
      user_id: 'u1',
      merchant_id: 'm1',
      amount: 5,
      currency: 'USD',
      country: 'US',
      channel: 'app',
      ts: START,
    });
    const { rows } = backfill({
      groups: example.groups,
      source,
      allowedLatenessMs: LATENESS,
      partitions: [records([{ text, time: START }])],
      queries: [
        { entity: 'user_id', id: 'u1', at: START - 1 },
        { entity: 'user_id', id: 'u1', at: START + 1 },
        { entity: 'user_id', id: 'u1', at: START + 3 * 86_400_000 },
      ],
    });
    expect(rows.map((r) => r.features.user_transactions!.count_1h)).toEqual([null, 1, null]);
  });
});

describe('backfill CLI', () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const run = promisify(execFile);
  // The CLI runs as a process of its own: ~1 s, and more than vitest's default 5 s on a busy machine.
  const cli = (args: string[], brokers = '') =>
    run(process.execPath, ['--import', 'tsx', 'services/features/src/backfill-cli.ts', ...args], {
      cwd: root,
      env: { ...process.env, KAFKA_BROKERS: brokers },
    });

  it(
    'writes one row per query from an NDJSON file of events',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'backfill-'));
      try {
        await writeFile(
          join(dir, 'events.ndjson'),
          stream(9, 200)
            .map((l) => l.text)
            .join('\n') + '\n',
        );
        await writeFile(
          join(dir, 'queries.ndjson'),
          [
            { entity: 'user_id', id: 'u3', at: START + 3 * 3_600_000 },
            { entity: 'merchant_id', id: 'm2', at: new Date(START + 3 * 3_600_000).toISOString() },
          ]
            .map((q) => JSON.stringify(q))
            .join('\n'),
        );
        // A reader that stopped reading before the rows were written (`| head -c 0`): said once, no stack trace, exit 1.
        const closed = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = execFile(
            process.execPath,
            [
              '--import',
              'tsx',
              'services/features/src/backfill-cli.ts',
              '--events',
              join(dir, 'events.ndjson'),
              '--queries',
              join(dir, 'queries.ndjson'),
            ],
            { cwd: root, env: { ...process.env, KAFKA_BROKERS: '' } },
            (error, _stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stderr }),
          );
          child.stdout?.destroy();
        });
        expect(closed.code).toBe(1);
        expect(closed.stderr).toMatch(/^backfill: stdout was closed before the end of the output \(EPIPE\)$/m);
        expect(closed.stderr).not.toMatch(/Error| {4}at /);
        const { stdout, stderr } = await cli(['--events', join(dir, 'events.ndjson'), '--queries', join(dir, 'queries.ndjson')]);
        const rows = stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line));
        expect(rows).toHaveLength(2);
        expect(rows[0]).toMatchObject({ entity: 'user_id', id: 'u3', at: START + 3 * 3_600_000 });
        expect(rows[0].features.user_transactions.count_24h).toBeGreaterThan(0);
        expect(rows[1].features.merchant_transactions.count_24h).toBeGreaterThan(0);
        expect(stderr).toMatch(/^backfill: 2 rows from \d+ events of transactions \(set aside: \d+ late, \d+ malformed, 0 invalid\)$/m);
        // The merchant's labels are another source: left out, and said so.
        expect(stderr).toMatch(
          /^backfill: feature group merchant_labels left out of the merchant_id rows: no events of source "labelled_transactions"/m,
        );
        expect(rows[1].features.merchant_labels).toBeUndefined();

        // Given as a second source, its group is answered too.
        const labelled = stream(9, 200)
          .filter((l) => l.time !== null)
          .map((l, i) => {
            const event = JSON.parse(l.text) as { event_id: string; merchant_id: string; ts: number };
            return JSON.stringify({ event_id: event.event_id, merchant_id: event.merchant_id, label: i % 4 === 0 ? 1 : 0, ts: event.ts });
          });
        await writeFile(join(dir, 'labelled.ndjson'), labelled.join('\n') + '\n');
        const both = await cli([
          '--events',
          join(dir, 'events.ndjson'),
          '--events',
          `labelled_transactions=${join(dir, 'labelled.ndjson')}`,
          '--queries',
          join(dir, 'queries.ndjson'),
        ]);
        const [user, merchant] = both.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line));
        expect(user.features).toEqual(rows[0].features);
        expect(merchant.features.merchant_transactions).toEqual(rows[1].features.merchant_transactions);
        expect(merchant.features.merchant_labels.count_7d).toBeGreaterThan(0);
        expect(both.stderr).toMatch(/^backfill: 2 rows from \d+ events of transactions \(.*\); \d+ events of labelled_transactions \(/m);
        expect(both.stderr).not.toMatch(/left out/);

        // To a file: the same rows, nothing on stdout.
        const toFile = await cli([
          '--events',
          join(dir, 'events.ndjson'),
          '--queries',
          join(dir, 'queries.ndjson'),
          '--out',
          join(dir, 'rows.ndjson'),
        ]);
        expect(toFile.stdout).toBe('');
        expect(await readFile(join(dir, 'rows.ndjson'), 'utf8')).toBe(stdout);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'answers a bad query line with its line number and exit status 1 (bad input; 2 is for wrong options)',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'backfill-'));
      try {
        await writeFile(join(dir, 'events.ndjson'), '');
        await writeFile(
          join(dir, 'queries.ndjson'),
          // The line number is the file's: the blank line counts.
          '{"entity":"user_id","id":"u1","at":1}\n\n{"entity":"user_id","id":"u1","at":"yesterday"}\n',
        );
        const failure = await cli(['--events', join(dir, 'events.ndjson'), '--queries', join(dir, 'queries.ndjson')]).then(
          () => null,
          (error: { code: number; stderr: string }) => error,
        );
        expect(failure?.code).toBe(1);
        expect(failure?.stderr).toMatch(/^backfill: .*queries\.ndjson:3: "at" must be epoch milliseconds/);
        // A file without a query (a failed export) is no input, not an empty output.
        await writeFile(join(dir, 'none.ndjson'), '\n');
        const none = await cli(['--events', join(dir, 'events.ndjson'), '--queries', join(dir, 'none.ndjson')]).then(
          () => null,
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
        expect([none?.code, none?.stdout, none?.stderr]).toEqual([1, '', `backfill: no queries in ${join(dir, 'none.ndjson')}\n`]);
        await writeFile(join(dir, 'good.ndjson'), '{"entity":"user_id","id":"u1","at":1}\n');
        const unreadable = await cli(['--events', join(dir, 'missing.ndjson'), '--queries', join(dir, 'good.ndjson')]).then(
          () => null,
          (error: { code: number; stderr: string }) => error,
        );
        expect([unreadable?.code, unreadable?.stderr]).toEqual([
          1,
          expect.stringMatching(/^backfill: cannot read .*missing\.ndjson: ENOENT/),
        ]);
        const unknown = await cli(['--events', `merchants=${join(dir, 'events.ndjson')}`, '--queries', join(dir, 'queries.ndjson')]).then(
          () => null,
          (error: { code: number; stderr: string }) => error,
        );
        expect([unknown?.code, unknown?.stderr]).toEqual([
          2,
          expect.stringMatching(/unknown source "merchants" \(known: transactions, labelled_transactions\)/),
        ]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT_MS,
  );
  it(
    'fails, writing no rows, when none of the events can be used (a file of other records), and exits 2 on an unknown option',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'backfill-'));
      const failing = (args: string[]) =>
        cli(args).then(
          () => null,
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
      try {
        await writeFile(join(dir, 'labels.ndjson'), '{"request_id":"r1","label":1,"ts":1}\n{"request_id":"r2","label":0,"ts":2}\n');
        await writeFile(join(dir, 'queries.ndjson'), '{"entity":"user_id","id":"u1","at":1000}\n');
        const wrong = await failing(['--events', join(dir, 'labels.ndjson'), '--queries', join(dir, 'queries.ndjson')]);
        expect([wrong?.code, wrong?.stdout]).toEqual([1, '']);
        expect(wrong?.stderr).toMatch(
          /^backfill: none of the 2 events of source "transactions" could be applied \(0 late, 2 invalid, 0 malformed\)/,
        );
        // An empty events file (a wrong path to an export that failed) leaves every feature at its default too.
        await writeFile(join(dir, 'empty.ndjson'), '');
        const empty = await failing(['--events', join(dir, 'empty.ndjson'), '--queries', join(dir, 'queries.ndjson')]);
        expect([empty?.code, empty?.stdout]).toEqual([1, '']);
        expect(empty?.stderr).toMatch(/^backfill: no events of source "transactions" were given: their features would be their defaults/);
        for (const lateness of ['', '5 minutes']) {
          const bad = await failing([
            '--events',
            join(dir, 'labels.ndjson'),
            '--queries',
            join(dir, 'queries.ndjson'),
            '--allowed-lateness',
            lateness,
          ]);
          expect([bad?.code, bad?.stdout]).toEqual([2, '']);
          expect(bad?.stderr).toContain(`--allowed-lateness: "${lateness}" is not a duration`);
        }
        const yearLate = await failing([
          '--events',
          join(dir, 'labels.ndjson'),
          '--queries',
          join(dir, 'queries.ndjson'),
          '--allowed-lateness',
          '400d',
        ]);
        expect([yearLate?.code, yearLate?.stderr]).toEqual([
          2,
          'backfill: --allowed-lateness: 400d is more than 365d (the most ALLOWED_LATENESS takes)\n',
        ]);
        // An --out that is one of the inputs would be emptied before it is read: refused, the file left whole.
        for (const out of ['queries.ndjson', 'labels.ndjson']) {
          const clobber = await failing([
            '--events',
            join(dir, 'labels.ndjson'),
            '--queries',
            join(dir, 'queries.ndjson'),
            '--out',
            join(dir, out),
          ]);
          expect([clobber?.code, clobber?.stdout]).toEqual([2, '']);
          expect(clobber?.stderr).toMatch(/is the input (--queries|--events) .*writing it would destroy what is read/);
        }
        expect(await readFile(join(dir, 'queries.ndjson'), 'utf8')).toBe('{"entity":"user_id","id":"u1","at":1000}\n');
        const option = await failing(['--frobnicate']);
        expect([option?.code, option?.stderr]).toEqual([2, expect.stringMatching(/^backfill: Unknown option '--frobnicate'/)]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT_MS,
  );

  it(
    'reading a topic, fails at once naming each broker when none answers, with no retry log of the Kafka client',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'backfill-'));
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as net.AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      try {
        await writeFile(join(dir, 'queries.ndjson'), '{"entity":"user_id","id":"u1","at":1000}\n');
        const failure = await cli(['--queries', join(dir, 'queries.ndjson'), '--topic', 'transactions'], `127.0.0.1:${port}`).then(
          () => null,
          (error: { code: number; stdout: string; stderr: string }) => error,
        );
        expect([failure?.code, failure?.stdout]).toEqual([1, '']);
        expect(failure?.stderr).toBe(`backfill: failed: no Kafka broker of KAFKA_BROKERS answers: 127.0.0.1:${port} (ECONNREFUSED)\n`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    CLI_TIMEOUT_MS,
  );
});
