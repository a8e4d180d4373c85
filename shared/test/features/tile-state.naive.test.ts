/**
 * Chronon-style parity test: the tiled state (applyEvent per source partition -> stateFields ->
 * readFeatureValues) against a brute-force aggregator that computes every feature directly
 * from the raw events, on seeded random streams with out-of-order arrival, duplicated
 * timestamps, missing values and events on tile boundaries, spread over three days.
 *
 * The window asserted (the tiling's definition, see tiles.ts): a feature of window W read at
 * `now` covers the events whose time t satisfies
 *
 *     floor((now - W) / T) * T  <=  t  <=  now,        T = tile size of W
 *
 * i.e. the window starts at the start of the tile containing `now - W` (inclusive) and ends
 * at `now` (inclusive). The state read always holds only events with t <= now, as in serving
 * (events are applied as they happen); how events stamped after `now` are treated is pinned
 * separately below. Tile sizes are written down here from the documented rule (the largest of
 * 1m, 5m, 1h, 1d not above W / 6), not taken from tiles.ts, so a change there is caught.
 * `last` is the value of the event with the greatest time; among equal times, the one
 * applied last (arrival order). stddev is the population standard deviation (divides by n).
 * Missing, null and non-finite values are skipped by every aggregation of their column.
 */
import { describe, it, expect } from 'vitest';
import { compileFeatureGroup, type EventSource, type FeatureGroup } from '../../src/features/definition.js';
import {
  applyEvent,
  emptyState,
  pruneState,
  readFeatureValues,
  stateFields,
  type EntityEvent,
  type PartitionState,
} from '../../src/features/tile-state.js';
import { tileSizeFor, windowFirstTile } from '../../src/features/tiles.js';
import { createRandom, type Random } from '../../src/model/random.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Window -> [window ms, expected tile ms]. */
const WINDOWS: Record<string, [number, number]> = {
  '10m': [10 * MINUTE, MINUTE],
  '1h': [HOUR, 5 * MINUTE],
  '24h': [DAY, HOUR],
};
const WINDOW_NAMES = Object.keys(WINDOWS);

const SOURCES: EventSource[] = [{ name: 'payments', topic: 'payments', keyField: 'user_id', eventTimeField: 'ts', eventIdField: 'id' }];

const DEFINITION: FeatureGroup = {
  name: 'parity',
  version: 1,
  source: 'payments',
  entity: 'user_id',
  ttl: '3d',
  aggregations: [
    { column: '*', op: 'count', windows: WINDOW_NAMES },
    { column: 'amount', op: 'count', windows: WINDOW_NAMES },
    { column: 'amount', op: 'sum', windows: WINDOW_NAMES },
    { column: 'amount', op: 'mean', windows: WINDOW_NAMES },
    { column: 'amount', op: 'min', windows: WINDOW_NAMES },
    { column: 'amount', op: 'max', windows: WINDOW_NAMES },
    { column: 'amount', op: 'last', windows: WINDOW_NAMES },
    { column: 'amount', op: 'stddev', windows: WINDOW_NAMES },
    { column: 'country', op: 'count', windows: WINDOW_NAMES },
    { column: 'country', op: 'last', windows: WINDOW_NAMES },
    { column: 'country', op: 'distinct_count', windows: WINDOW_NAMES },
  ],
};

const group = compileFeatureGroup(DEFINITION, SOURCES);

/** Start of the stream: deliberately not aligned to any tile size. */
const START = Date.UTC(2024, 2, 1, 0, 0, 0) + 37_123;
const COUNTRIES = ['FR', 'DE', 'US', 'GB', 'BR'];

// ---------------------------------------------------------------------------------------
// Event generation
// ---------------------------------------------------------------------------------------

/** Events in arrival order (out of order in event time). */
function generateStream(seed: number): EntityEvent[] {
  const random = createRandom(seed);
  const generated: { time: number; arrival: number; event: EntityEvent }[] = [];
  const sessions = 40 + random.int(30);
  for (let s = 0; s < sessions; s++) {
    let time = START + random.int(3 * DAY);
    const size = 1 + random.int(15);
    for (let i = 0; i < size; i++) {
      const roll = random.next();
      if (i > 0 && roll < 0.15) {
        // duplicate of the previous event's timestamp
      } else if (roll < 0.25) {
        time = Math.floor(time / MINUTE) * MINUTE; // exactly on a 1m tile boundary
      } else if (roll < 0.3) {
        time = Math.ceil(time / HOUR) * HOUR - 1; // last ms of a 1h tile
      } else if (roll < 0.35) {
        time = Math.floor(time / HOUR) * HOUR; // exactly on a 1h tile boundary
      } else {
        time += random.int(4 * MINUTE);
      }
      generated.push({ time, arrival: time + lateness(random), event: { time, values: eventValues(random) } });
    }
  }
  return generated
    .map((g, index) => ({ ...g, index }))
    .sort((a, b) => a.arrival - b.arrival || a.index - b.index)
    .map((g) => g.event);
}

function lateness(random: Random): number {
  const roll = random.next();
  if (roll < 0.85) return random.int(30_000);
  if (roll < 0.97) return random.int(10 * MINUTE);
  return random.int(6 * HOUR);
}

function eventValues(random: Random): Record<string, unknown> {
  const values: Record<string, unknown> = { user_id: 'u1' };
  const roll = random.next();
  if (roll < 0.05) values.amount = null;
  else if (roll < 0.1)
    values.amount = Infinity; // not a finite number: ignored like a missing value
  else if (roll < 0.15) {
    // amount missing
  } else if (roll < 0.25)
    values.amount = random.int(50); // small integers, often repeated
  else values.amount = random.int(200_000) / 100; // cents in [0, 2000)
  if (random.next() < 0.9) values.country = COUNTRIES[random.int(COUNTRIES.length)];
  return values;
}

// ---------------------------------------------------------------------------------------
// The brute-force aggregator
// ---------------------------------------------------------------------------------------

type Value = number | string | null;

function numericValue(event: EntityEvent, column: string): number | null {
  const value = event.values[column];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function presentValue(event: EntityEvent, column: string): number | string | null {
  const value = event.values[column];
  if (typeof value === 'string') return value;
  return numericValue(event, column);
}

/**
 * Every feature of the group computed from the raw `applied` events (in arrival order),
 * independently of the tiles: window [floor((now - W) / T) * T, now].
 */
function naiveValues(applied: EntityEvent[], now: number): Record<string, Value> {
  const result: Record<string, Value> = {};
  for (const [window, [windowMs, tileMs]] of Object.entries(WINDOWS)) {
    const first = Math.floor((now - windowMs) / tileMs) * tileMs;
    const inWindow = applied.filter((e) => e.time >= first && e.time <= now);
    const amounts = inWindow.flatMap((e) => {
      const v = numericValue(e, 'amount');
      return v === null ? [] : [v];
    });
    const n = amounts.length;
    const sum = amounts.reduce((a, b) => a + b, 0);
    const mean = n > 0 ? sum / n : null;
    result[`count_${window}`] = inWindow.length;
    result[`amount_count_${window}`] = n;
    result[`amount_sum_${window}`] = sum;
    result[`amount_mean_${window}`] = mean;
    result[`amount_min_${window}`] = n > 0 ? Math.min(...amounts) : null;
    result[`amount_max_${window}`] = n > 0 ? Math.max(...amounts) : null;
    // population standard deviation, two-pass (the numerically sound way)
    result[`amount_stddev_${window}`] = mean === null ? null : Math.sqrt(amounts.reduce((a, x) => a + (x - mean) * (x - mean), 0) / n);
    result[`amount_last_${window}`] = newest(inWindow, 'amount');
    result[`country_count_${window}`] = inWindow.filter((e) => presentValue(e, 'country') !== null).length;
    result[`country_last_${window}`] = newest(inWindow, 'country');
    // Few distinct values: the sketch counts them exactly.
    result[`country_distinct_count_${window}`] = new Set(inWindow.map((e) => presentValue(e, 'country')).filter((v) => v !== null)).size;
  }
  return result;
}

/** The value of the event with the greatest time; among equal times, the one applied last. */
function newest(events: EntityEvent[], column: string): Value {
  let best: { time: number; value: number | string } | null = null;
  for (const event of events) {
    const value = presentValue(event, column);
    if (value === null) continue;
    if (best === null || event.time >= best.time) best = { time: event.time, value };
  }
  return best === null ? null : best.value;
}

/** The values of all events of the newest time in the window of a `last` feature. */
function tiedNewest(applied: EntityEvent[], now: number, name: string): Value[] {
  const column = name.startsWith('country') ? 'country' : 'amount';
  const window = name.slice(name.lastIndexOf('_') + 1);
  const [windowMs, tileMs] = WINDOWS[window]!;
  const first = Math.floor((now - windowMs) / tileMs) * tileMs;
  const present = applied.filter((e) => e.time >= first && e.time <= now && presentValue(e, column) !== null);
  const newestTime = Math.max(...present.map((e) => e.time));
  return present.filter((e) => e.time === newestTime).map((e) => presentValue(e, column));
}

/** Mean of squares of the numeric amounts in the window: the scale of stddev's rounding error. */
function meanSquare(applied: EntityEvent[], now: number, window: string): number {
  const [windowMs, tileMs] = WINDOWS[window]!;
  const first = Math.floor((now - windowMs) / tileMs) * tileMs;
  const amounts = applied.filter((e) => e.time >= first && e.time <= now).flatMap((e) => numericValue(e, 'amount') ?? []);
  return amounts.reduce((a, x) => a + x * x, 0) / Math.max(1, amounts.length);
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

const RELATIVE = 1e-9;

function closeTo(actual: number, expected: number, scale = Math.max(Math.abs(actual), Math.abs(expected))): boolean {
  return Math.abs(actual - expected) <= RELATIVE * scale;
}

/**
 * Differences between the tiled and the naive values, as readable lines: counts, min, max
 * and last must be equal (no arithmetic is involved), sum and mean within 1e-9 relative.
 * stddev is finalized as sqrt(E[x^2] - mean^2), whose rounding error scales with E[x^2]
 * rather than with the variance, so here the variances are compared to 1e-9 of E[x^2]; the
 * precision of ill-conditioned windows is the subject of its own test below.
 */
function parityMismatches(applied: EntityEvent[], tiled: Record<string, Value>, now: number, context: string): string[] {
  const naive = naiveValues(applied, now);
  const problems: string[] = [];
  if (Object.keys(tiled).sort().join() !== Object.keys(naive).sort().join()) problems.push(`${context}: feature names differ`);
  for (const feature of group.features) {
    const actual = tiled[feature.name];
    const expected = naive[feature.name];
    let same: boolean;
    if (feature.op === 'last') {
      // Among events of equal time on different partitions no arrival order exists: any of them may win.
      same = actual === expected || tiedNewest(applied, now, feature.name).includes(actual ?? null);
    } else if (typeof expected !== 'number' || ['count', 'min', 'max', 'distinct_count'].includes(feature.op)) {
      same = actual === expected;
    } else if (typeof actual !== 'number') {
      same = false;
    } else if (feature.op === 'stddev') {
      const window = feature.name.slice(feature.name.lastIndexOf('_') + 1);
      same = closeTo(actual ** 2, expected ** 2, meanSquare(applied, now, window));
    } else {
      same = closeTo(actual, expected);
    }
    if (!same) {
      problems.push(
        `${context}, now=${new Date(now).toISOString()}, ${feature.name}: tiled ${String(actual)} vs naive ${String(expected)}`,
      );
    }
  }
  return problems;
}

/** The documented error bound, checked on the events: W <= covered history < W + T. */
function boundMismatches(applied: EntityEvent[], tiled: Record<string, Value>, now: number, context: string): string[] {
  const problems: string[] = [];
  for (const [window, [windowMs, tileMs]] of Object.entries(WINDOWS)) {
    const atLeast = applied.filter((e) => e.time >= now - windowMs && e.time <= now).length;
    const atMost = applied.filter((e) => e.time > now - windowMs - tileMs && e.time <= now).length;
    const count = tiled[`count_${window}`] as number;
    if (count < atLeast || count > atMost) {
      problems.push(`${context}, now=${now}: count_${window}=${count}, events in [now-W, now]: ${atLeast}, in (now-W-T, now]: ${atMost}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// Chunkings
// ---------------------------------------------------------------------------------------

type Chunking = { name: string; chunks: (events: EntityEvent[], random: Random) => EntityEvent[][] };

const CHUNKINGS: Chunking[] = [
  { name: 'one call with every event', chunks: (events) => [events] },
  { name: 'one call per event', chunks: (events) => events.map((e) => [e]) },
  { name: 'random splits of 1-60 events', chunks: (events, random) => randomSplits(events, random, 60) },
  { name: 'random splits of 1-5 events', chunks: (events, random) => randomSplits(events, random, 5) },
];

function randomSplits(events: EntityEvent[], random: Random, maxSize: number): EntityEvent[][] {
  const chunks: EntityEvent[][] = [];
  for (let i = 0; i < events.length;) {
    const size = 1 + random.int(maxSize);
    chunks.push(events.slice(i, i + size));
    i += size;
  }
  return chunks;
}

/**
 * Applies chunk i to source partition i % partitions (as events of one entity arrive on
 * several partitions) and returns the stored fields of all partitions, which a read merges.
 */
function applyAll(chunks: EntityEvent[][], partitions = 3): Map<string, Buffer> {
  const states = Array.from({ length: partitions }, () => emptyState());
  chunks.forEach((chunk, i) => {
    for (const event of chunk) applyEvent(group, states[i % partitions]!, event);
  });
  return fieldsOf(states);
}

function fieldsOf(states: PartitionState[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  states.forEach((state, partition) => {
    for (const [field, value] of Object.entries(stateFields(partition, state))) fields.set(field, value);
  });
  return fields;
}

/** Read times at or after `after`: random ones, and ones that put a window edge on an event or a tile boundary. */
function readTimes(events: EntityEvent[], after: number, random: Random, count: number): number[] {
  const candidates = new Set<number>([after, after + 1, after + 25 * HOUR]);
  for (let i = 0; i < count; i++) candidates.add(after + random.int(26 * HOUR));
  for (const event of events) {
    for (const [windowMs, tileMs] of Object.values(WINDOWS)) {
      const tile = Math.floor(event.time / tileMs) * tileMs;
      // the event exactly at now - W (included), on the last ms of the extra tile
      // (included), and just past it (excluded)
      for (const now of [event.time + windowMs, tile + windowMs + tileMs - 1, tile + windowMs + tileMs]) {
        if (now >= after) candidates.add(now);
      }
    }
  }
  const all = [...candidates];
  random.shuffle(all);
  return all.slice(0, count);
}

const SEEDS = [1, 2, 3, 4, 5, 6];

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

describe('tile layout of the parity group', () => {
  it('uses the documented tile size for each window: 1m for 10m, 5m for 1h, 1h for 24h', () => {
    for (const [window, [windowMs, tileMs]] of Object.entries(WINDOWS)) {
      expect(tileSizeFor(windowMs), window).toBe(tileMs);
      for (const feature of group.features.filter((f) => f.name.endsWith(`_${window}`))) {
        expect(feature.windowMs, feature.name).toBe(windowMs);
        expect(feature.tileMs, feature.name).toBe(tileMs);
      }
    }
    expect(group.features).toHaveLength(11 * WINDOW_NAMES.length);
  });

  it('the generated streams are adversarial: out of order, duplicated timestamps, gaps in values, over three days', () => {
    for (const seed of SEEDS) {
      const events = generateStream(seed);
      const times = events.map((e) => e.time);
      const outOfOrder = times.filter((t, i) => i > 0 && t < times[i - 1]!).length;
      expect(outOfOrder, `seed ${seed}`).toBeGreaterThan(10);
      expect(new Set(times).size, `seed ${seed}`).toBeLessThan(times.length - 10);
      expect(Math.max(...times) - Math.min(...times), `seed ${seed}`).toBeGreaterThan(2 * DAY);
      expect(events.some((e) => numericValue(e, 'amount') === null)).toBe(true);
      expect(events.some((e) => e.values.country === undefined)).toBe(true);
    }
  });
});

describe('tiled windows equal a brute-force aggregation of the raw events', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: the same values whatever the chunking, at every read time`, { timeout: 30_000 }, () => {
      const events = generateStream(seed);
      const random = createRandom(seed * 7919);
      const maxTime = Math.max(...events.map((e) => e.time));
      const problems: string[] = [];
      let reads = 0;
      for (const chunking of CHUNKINGS) {
        const chunks = chunking.chunks(events, random);
        const states = [emptyState(), emptyState(), emptyState()];
        const applied: EntityEvent[] = [];
        chunks.forEach((chunk, i) => {
          // Chunk i arrives on partition i % 3: the read merges the partitions' tiles.
          for (const event of chunk) applyEvent(group, states[i % 3]!, event);
          applied.push(...chunk);
          // mid-stream reads, every few chunks: at or after the newest event applied
          if (i % Math.max(1, Math.floor(chunks.length / 10)) === 0) {
            const newestApplied = Math.max(...applied.map((e) => e.time));
            const state = Object.fromEntries(fieldsOf(states));
            for (const now of readTimes(applied, newestApplied, random, 4)) {
              const context = `${chunking.name}, after chunk ${i}`;
              const tiled = readFeatureValues(group, state, now).values;
              problems.push(...parityMismatches(applied, tiled, now, context), ...boundMismatches(applied, tiled, now, context));
              reads++;
            }
          }
        });
        const state = Object.fromEntries(fieldsOf(states));
        for (const now of readTimes(events, maxTime, random, 40)) {
          const tiled = readFeatureValues(group, state, now).values;
          problems.push(
            ...parityMismatches(events, tiled, now, `${chunking.name}, final`),
            ...boundMismatches(events, tiled, now, `${chunking.name}, final`),
          );
          reads++;
        }
      }
      expect(reads).toBeGreaterThan(150);
      expect(problems.slice(0, 20), `${problems.length} differences`).toEqual([]);
    });
  }

  it('an absent or empty state reads null for every feature; a state whose events all left the windows reads counts and sums 0', () => {
    for (const fields of [null, {}]) {
      const read = readFeatureValues(group, fields, START);
      expect(read.newestEventTime).toBeNull();
      for (const feature of group.features) expect(read.values[feature.name], feature.name).toBeNull();
    }
    // state that exists but whose events all left the windows
    const fields = applyAll([[{ time: START, values: { amount: 5, country: 'FR' } }]]);
    const later = readFeatureValues(group, Object.fromEntries(fields), START + 2 * DAY).values;
    expect(later).toEqual(naiveValues([{ time: START, values: { amount: 5, country: 'FR' } }], START + 2 * DAY));
    expect(later.count_24h).toBe(0);
    expect(later.amount_sum_24h).toBe(0);
    expect(later.amount_mean_24h).toBeNull();
    expect(later.amount_stddev_24h).toBeNull();
    expect(later.country_last_24h).toBeNull();
  });

  it('reads a value past the range of doubles (a sum overflowing to Infinity) as null, in one partition or merged from several', () => {
    const huge = (t: number) => ({ time: START + t, values: { amount: 1e308, country: 'FR' } });
    for (const fields of [applyAll([[huge(0), huge(1)]], 1), applyAll([[huge(0)], [huge(1)]], 2)]) {
      const read = readFeatureValues(group, Object.fromEntries(fields), START + 1000).values;
      expect(read.amount_sum_10m).toBeNull();
      expect(read.amount_max_10m).toBe(1e308);
      expect(read.amount_count_10m).toBe(2);
      for (const [name, value] of Object.entries(read)) if (typeof value === 'number') expect(Number.isFinite(value), name).toBe(true);
    }
  });

  it('reads a spread past the range of doubles (values near ±1e308) as no stddev, not 0, in one partition or merged', () => {
    const at = (t: number, amount: number) => ({ time: START + t, values: { amount, country: 'FR' } });
    for (const fields of [applyAll([[at(0, 1e308), at(1, -1e308)]], 1), applyAll([[at(0, 1e308)], [at(1, -1e308)]], 2)]) {
      const read = readFeatureValues(group, Object.fromEntries(fields), START + 1000).values;
      expect(read.amount_stddev_10m).toBeNull();
      expect(read.amount_count_10m).toBe(2);
    }
  });
});

describe('window boundaries', () => {
  const tileAligned = Date.UTC(2024, 2, 2, 12, 0, 0);

  it('covers never less than W nor more than W + T of history, at any read time', () => {
    const random = createRandom(11);
    for (let i = 0; i < 5000; i++) {
      const now = START + random.int(4 * DAY);
      for (const [window, [windowMs, tileMs]] of Object.entries(WINDOWS)) {
        const covered = now - windowFirstTile(now, windowMs, tileMs);
        expect(covered, `${window} at ${now}`).toBeGreaterThanOrEqual(windowMs);
        expect(covered, `${window} at ${now}`).toBeLessThan(windowMs + tileMs);
      }
    }
  });

  it('includes an event exactly W old and one in the extra tile, excludes one a full tile older', () => {
    for (const [window, [windowMs, tileMs]] of Object.entries(WINDOWS)) {
      const now = tileAligned + tileMs / 2; // mid-tile: the extra tile reaches T/2 further back
      const exactlyW = { time: now - windowMs, values: { amount: 1 } };
      const inExtraTile = { time: tileAligned - windowMs, values: { amount: 10 } };
      const beforeExtraTile = { time: tileAligned - windowMs - 1, values: { amount: 100 } };
      const fields = applyAll([[exactlyW, inExtraTile, beforeExtraTile]]);
      const values = readFeatureValues(group, Object.fromEntries(fields), now).values;
      expect(values[`count_${window}`], window).toBe(2);
      expect(values[`amount_sum_${window}`], window).toBe(11);
    }
  });

  it('counts an event stamped exactly `now`, in a tile that starts at `now`', () => {
    const fields = applyAll([[{ time: tileAligned, values: { amount: 3, country: 'DE' } }]]);
    const values = readFeatureValues(group, Object.fromEntries(fields), tileAligned).values;
    for (const window of WINDOW_NAMES) {
      expect(values[`count_${window}`], window).toBe(1);
      expect(values[`country_last_${window}`], window).toBe('DE');
    }
  });

  it('reads the tiles whose start lies in [first, now]: a tile starting after `now` is not read, the tile containing `now` is read whole', () => {
    // Tiles cannot be split, so events stamped after `now` inside the tile containing `now`
    // are included (at most T - 1 ms of future); a tile starting after `now` is not.
    const now = tileAligned + 30_000; // mid 1m tile
    const fields = applyAll([
      [
        { time: now - 1000, values: { amount: 1 } },
        { time: tileAligned + MINUTE - 1, values: { amount: 10 } }, // same 1m tile as now, after now
        { time: tileAligned + MINUTE, values: { amount: 100 } }, // next 1m tile
        { time: tileAligned + HOUR, values: { amount: 1000 } }, // next 1h tile
      ],
    ]);
    const values = readFeatureValues(group, Object.fromEntries(fields), now).values;
    expect(values.amount_sum_10m).toBe(11);
    expect(values.amount_sum_1h).toBe(111); // 5m tile [tileAligned, +5m) contains all but the last
    expect(values.amount_sum_24h).toBe(111); // 1h tile [tileAligned, +1h) likewise
  });
});

describe('last: ties in event time', () => {
  it('keeps the value applied last among equal event times, whether in one call or across calls', () => {
    const a = { time: START, values: { country: 'FR', amount: 1 } };
    const b = { time: START, values: { country: 'DE', amount: 2 } };
    const older = { time: START - 1, values: { country: 'US', amount: 3 } };
    for (const chunks of [[[a, b, older]], [[a], [b], [older]], [[a, b], [older]], [[a], [b, older]]]) {
      // One partition: arrival order is only defined within a partition.
      const values = readFeatureValues(group, Object.fromEntries(applyAll(chunks, 1)), START + 1).values;
      expect(values.country_last_1h).toBe('DE');
      expect(values.amount_last_1h).toBe(2);
    }
  });
});

describe('pruneState', () => {
  const stateOf = (events: EntityEvent[]): PartitionState => {
    const state = emptyState();
    for (const event of events) applyEvent(group, state, event);
    return state;
  };

  it('pruning at time P changes no value read at or after P', { timeout: 30_000 }, () => {
    for (const seed of SEEDS.slice(0, 3)) {
      const events = generateStream(seed);
      const random = createRandom(seed + 100);
      const full = stateFields(0, stateOf(events));
      const maxTime = Math.max(...events.map((e) => e.time));
      const minTime = Math.min(...events.map((e) => e.time));
      let prunedSome = 0;
      let keptSome = 0;
      for (let i = 0; i < 10; i++) {
        // prune times from inside the stream to past its end
        const pruneAt = minTime + random.int(maxTime - minTime + 30 * HOUR);
        const state = stateOf(events);
        const removed = pruneState(group, state, pruneAt);
        if (removed.length > 0) prunedSome++;
        if (state.tiles.size > 0) keptSome++;
        const pruned = stateFields(0, state);
        for (let j = 0; j < 6; j++) {
          const now = pruneAt + (j === 0 ? 0 : random.int(2 * DAY));
          expect(readFeatureValues(group, pruned, now), `seed ${seed}, prune ${pruneAt}, read ${now}`).toEqual(
            readFeatureValues(group, full, now),
          );
        }
      }
      expect(prunedSome, `seed ${seed}: prune times that removed something`).toBeGreaterThan(3);
      expect(keptSome, `seed ${seed}: prune times that kept something`).toBeGreaterThan(3);
      const afterStream = stateOf(events);
      pruneState(group, afterStream, maxTime + 26 * HOUR);
      expect(afterStream.tiles.size, `seed ${seed}: every tile is pruned 26h after the newest event`).toBe(0);
    }
  });

  it('removes a tile exactly when it starts before the first tile of the longest window read from tiles of its size', () => {
    const now = Date.UTC(2024, 2, 3, 12, 30, 0);
    for (const [windowMs, tileMs] of Object.values(WINDOWS)) {
      const first = Math.floor((now - windowMs) / tileMs) * tileMs;
      const state = stateOf([
        { time: first, values: { amount: 1 } },
        { time: first - tileMs, values: { amount: 2 } },
      ]);
      const removed = pruneState(group, state, now);
      expect(state.tiles.has(`${tileMs}:${first}`)).toBe(true);
      expect(removed).toContain(`${tileMs}:${first - tileMs}`);
    }
  });

  it('keeps, per tile size, no more tiles than its windows read, however long the stream', () => {
    // An event every 40 s for 26 hours, pruned every minute as the pipeline does.
    const state = emptyState();
    for (let time = START; time < START + 26 * HOUR; time += 40_000) {
      applyEvent(group, state, { time, values: { amount: 1, country: 'FR' } });
      if (time % MINUTE < 40_000) pruneState(group, state, time);
    }
    const bySize = new Map<number, number>();
    for (const key of state.tiles.keys()) bySize.set(Number(key.split(':')[0]), (bySize.get(Number(key.split(':')[0])) ?? 0) + 1);
    for (const [windowMs, tileMs] of Object.values(WINDOWS)) {
      expect(bySize.get(tileMs), `${tileMs / MINUTE}-minute tiles`).toBeLessThanOrEqual(windowMs / tileMs + 2);
    }
  });
});

describe('numerical precision of stddev', () => {
  // Moments merged with Chan's formula keep this exact, where sqrt(q/n - mean^2) from a sum of squares q would cancel out: when the spread is small
  // next to the magnitude, the subtraction cancels and the result loses every digit.
  // Amounts up to 1e9 are valid in the fraud TransactionSchema.
  const stddevOf = (amounts: number[]): number | null => {
    const events = amounts.map((amount, i) => ({ time: START + i * 1000, values: { amount } }));
    const fields = applyAll([events]);
    return readFeatureValues(group, Object.fromEntries(fields), START + MINUTE).values.amount_stddev_1h as number | null;
  };

  it('is exact for well-conditioned inputs', () => {
    expect(stddevOf([2, 4, 4, 4, 5, 5, 7, 9])).toBe(2);
    expect(stddevOf([42])).toBe(0);
  });

  it('keeps 1e-9 relative precision when the spread is small next to the magnitude (1e9 + {0, 1, 2})', () => {
    const expected = Math.sqrt(2 / 3);
    const actual = stddevOf([1e9, 1e9 + 1, 1e9 + 2]);
    expect(actual).not.toBeNull();
    expect(Math.abs(actual! - expected) / expected, `stddev ${actual} vs ${expected}`).toBeLessThan(1e-9);
  });
});

describe('a column holding both numbers and strings', () => {
  it('mean and stddev are computed over the numeric values only', () => {
    // Strings count for `count` and `last`; mean and stddev keep moments of numbers only.
    const events = [
      { time: START, values: { amount: 10 } },
      { time: START + 1000, values: { amount: 'n/a' } },
      { time: START + 2000, values: { amount: 20 } },
    ];
    const values = readFeatureValues(group, Object.fromEntries(applyAll([events])), START + MINUTE).values;
    expect(values.amount_sum_1h).toBe(30);
    expect(values.amount_mean_1h).toBe(15);
    expect(values.amount_stddev_1h).toBe(5);
  });
});
