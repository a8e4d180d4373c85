/**
 * The stored encoding of a partition's state (`s<partition>`, the binary layout of
 * state-codec.ts): every component round-trips exactly, sketches in both modes, event ids
 * with any characters; the JSON layout of earlier versions is still read, alone or beside
 * partitions in the binary one, and reads the same; values this version cannot read are
 * refused with a message.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergeComponent, finalize, type Component, type ComponentState, type ComponentValue } from '../../src/features/aggregations.js';
import { compileFeatureGroup, type FeatureGroup } from '../../src/features/definition.js';
import { encodeSketch } from '../../src/features/distinct-sketch.js';
import {
  applyEvent,
  decodePartitionState,
  emptyState,
  encodeJsonPartitionState,
  encodePartitionState,
  parsePartitionState,
  pruneState,
  readFeatureValues,
  stateField,
  stateFields,
  storedOffset,
  type PartitionState,
  type StoredFields,
  type Tile,
} from '../../src/features/tile-state.js';
import { windowFirstTile } from '../../src/features/tiles.js';
import { createRandom } from '../../src/model/random.js';

const DEFINITION: FeatureGroup = {
  name: 'encoding',
  version: 1,
  source: 'payments',
  entity: 'user_id',
  ttl: '2d',
  aggregations: [
    { column: '*', op: 'count', windows: ['10m', '1h', '24h'] },
    { column: 'amount', op: 'sum', windows: ['1h', '24h'] },
    { column: 'amount', op: 'mean', windows: ['24h'] },
    { column: 'amount', op: 'stddev', windows: ['24h'] },
    { column: 'amount', op: 'min', windows: ['1h'] },
    { column: 'amount', op: 'max', windows: ['24h'] },
    { column: 'amount', op: 'last', windows: ['1h'] },
    { column: 'country', op: 'last', windows: ['24h'] },
    { column: 'merchant', op: 'distinct_count', windows: ['1h', '24h'] },
  ],
};
const group = compileFeatureGroup(DEFINITION, [
  { name: 'payments', topic: 'payments', keyField: 'user_id', eventTimeField: 'ts', eventIdField: 'id' },
]);
const START = Date.UTC(2026, 0, 5, 10, 17, 3);

function randomState(seed: number, events: number, merchants: number): PartitionState {
  const random = createRandom(seed);
  const state = emptyState();
  for (let i = 0; i < events; i++) {
    const values: Record<string, unknown> = { merchant: `m${random.int(merchants)}`, country: ['FR', 'D|E', 'U"S'][random.int(3)] };
    if (random.next() < 0.9) values.amount = random.next() * 1000 - 100;
    const time = START + random.int(30 * 3_600_000);
    applyEvent(group, state, { time, values });
    // The recent ids a state written by an earlier version holds.
    state.seen.set(`e${seed}-${i}`, time);
  }
  return state;
}

/**
 * The straightforward read (what versions before the in-place reader did): decode every
 * partition whole, sort all tiles by partition, size and start, merge every component of
 * each feature's column.
 */
function referenceRead(fields: StoredFields, nowMs: number, only?: ReadonlySet<string>) {
  const values: Record<string, number | string | null> = {};
  let newest: number | null = null;
  const features = only ? group.features.filter((f) => only.has(f.name)) : group.features;
  const tiles: { partition: string; tileMs: number; start: number; tile: Tile }[] = [];
  for (const field in fields) {
    const match = /^s(\d+)$/.exec(field);
    if (!match) continue;
    const state = decodePartitionState(fields[field]!);
    if (state.newest !== null) newest = Math.max(newest ?? -Infinity, state.newest);
    for (const [key, tile] of state.tiles) {
      const [size, start] = key.split(':').map(Number);
      tiles.push({ partition: match[1]!, tileMs: size!, start: start!, tile });
    }
  }
  if (newest === null) {
    for (const feature of features) values[feature.name] = null;
    return { values, newestEventTime: null };
  }
  tiles.sort((x, y) => (x.partition < y.partition ? -1 : x.partition > y.partition ? 1 : x.tileMs - y.tileMs || x.start - y.start));
  for (const feature of features) {
    const first = windowFirstTile(nowMs, feature.windowMs, feature.tileMs);
    const state: ComponentState = {};
    for (const { tileMs, start, tile } of tiles) {
      if (tileMs !== feature.tileMs || start < first || start > nowMs) continue;
      const columnState = tile.get(feature.column);
      if (!columnState) continue;
      for (const name in columnState) {
        const component = name as Component;
        state[component] = mergeComponent(component, state[component], columnState[component] as ComponentValue);
      }
    }
    values[feature.name] = finalize(feature.op, state);
  }
  return { values, newestEventTime: newest };
}

const jsonFields = (partition: number, state: PartitionState): StoredFields => ({
  [stateField(partition)]: encodeJsonPartitionState(state),
});

describe('partition state encoding', () => {
  it('round-trips every component exactly, from one event to sketches past the exact limit', () => {
    for (const [seed, events, merchants] of [
      [1, 1, 1],
      [2, 40, 5],
      [3, 3_000, 100_000],
    ] as const) {
      const state = randomState(seed, events, merchants);
      const decoded = decodePartitionState(encodePartitionState(state));
      expect(decoded).toEqual(state);
      // Sketches compare by their stored text (dense ones included).
      for (const [key, tile] of state.tiles) {
        const sketch = tile.get('merchant')?.dc;
        if (sketch) expect(encodeSketch(decoded.tiles.get(key)!.get('merchant')!.dc as never)).toBe(encodeSketch(sketch as never));
      }
      expect(encodePartitionState(decoded).equals(encodePartitionState(state))).toBe(true);
    }
  });

  it('keeps event ids with any characters and their times, and a state with no events', () => {
    const state = emptyState();
    const ids = ['a', 'with space', 'q"uote', 'back\\slash', 'sep|ar:ated,', '\u0000nul', 'émoji 🎉', '', 'x'.repeat(70_000)];
    ids.forEach((id, i) => {
      applyEvent(group, state, { time: START + i, values: { amount: i, country: `pays ${i} ✓` } });
      state.seen.set(id, START + i);
    });
    const decoded = decodePartitionState(encodePartitionState(state));
    expect([...decoded.seen]).toEqual(ids.map((id, i) => [id, START + i]));
    expect(decoded).toEqual(state);
    expect(decodePartitionState(encodePartitionState(emptyState()))).toEqual(emptyState());
  });

  it('keeps tiles before 1970 and far ahead (their starts read from the tile keys)', () => {
    const state = emptyState();
    for (const time of [-86_400_000 * 3 - 1, -1, 0, 8.64e15]) applyEvent(group, state, { time, values: { amount: 1, country: 'FR' } });
    const decoded = decodePartitionState(encodePartitionState(state));
    expect([...decoded.tiles.keys()].sort()).toEqual([...state.tiles.keys()].sort());
    expect(decoded).toEqual(state);
  });

  it('keeps -0, extreme and tiny doubles bit for bit', () => {
    const state = emptyState();
    for (const amount of [-0, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 0.1 + 0.2, 1e-310]) {
      applyEvent(group, state, { time: START, values: { amount } });
    }
    expect(decodePartitionState(encodePartitionState(state))).toEqual(state);
    const lone = emptyState();
    applyEvent(group, lone, { time: START, values: { amount: -0 } });
    expect(Object.is(readFeatureValues(group, stateFields(0, lone), START).values.amount_sum_1h, -0)).toBe(true);
  });

  it('is one field per partition, which a partition reads back alone and a read merges', () => {
    const a = randomState(4, 30, 10);
    const b = randomState(5, 30, 10);
    const fields: StoredFields = { ...stateFields(0, a), ...stateFields(12, b), _o0: '5', _o12: Buffer.from('9') };
    expect(Object.keys(fields).sort()).toEqual(['_o0', '_o12', 's0', 's12']);
    // Without the event ids, which the store keeps beside the state.
    expect(b.seen.size).toBeGreaterThan(0);
    expect((fields[stateField(12)] as Buffer).equals(encodePartitionState(b, { eventIds: false }))).toBe(true);
    expect(parsePartitionState(12, fields)).toEqual({ tiles: b.tiles, newest: b.newest, seen: new Map() });
    expect(parsePartitionState(3, fields)).toEqual(emptyState());
    expect([storedOffset(0, fields), storedOffset(12, fields), storedOffset(3, fields)]).toEqual(['5', '9', null]);
    const now = START + 30 * 3_600_000;
    const read = readFeatureValues(group, fields, now);
    const both = readFeatureValues(group, { ...stateFields(0, a), ...stateFields(12, b) }, now);
    expect(read).toEqual(both);
    expect(read).toEqual(referenceRead(fields, now));
    expect(read.newestEventTime).toBe(Math.max(a.newest!, b.newest!));
    expect(read.values.count_24h).toBe(
      (readFeatureValues(group, stateFields(0, a), now).values.count_24h as number) +
        (readFeatureValues(group, stateFields(0, b), now).values.count_24h as number),
    );
  });

  it('reads state written in the JSON layout of earlier versions, as text or bytes, alone or beside binary partitions', () => {
    const a = randomState(6, 200, 50);
    const b = randomState(7, 200, 50);
    const json = encodeJsonPartitionState(a);
    expect(json.startsWith('[1,')).toBe(true);
    expect(decodePartitionState(json)).toEqual(decodePartitionState(encodePartitionState(a)));
    expect(decodePartitionState(Buffer.from(json))).toEqual(decodePartitionState(encodePartitionState(a)));
    for (let hour = 0; hour <= 32; hour += 4) {
      const now = START + hour * 3_600_000;
      const binary = readFeatureValues(group, { ...stateFields(0, a), ...stateFields(1, b) }, now);
      expect(readFeatureValues(group, { ...jsonFields(0, a), ...jsonFields(1, b) }, now)).toEqual(binary);
      expect(readFeatureValues(group, { s0: Buffer.from(json), ...stateFields(1, b) }, now)).toEqual(binary);
      expect(readFeatureValues(group, { ...stateFields(0, a), ...jsonFields(1, b) }, now)).toEqual(binary);
    }
  });

  it('reads what the straightforward decode-and-merge reads, for any events, partitions, read time and features read', () => {
    const names = group.features.map((f) => f.name);
    const event = fc.record({
      id: fc.option(fc.string({ maxLength: 6 }), { nil: undefined }),
      offset: fc.integer({ min: 0, max: 30 * 3_600_000 }),
      amount: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { nil: undefined }),
      merchant: fc.constantFrom('m1', 'm2', 'm3', 'é'),
      country: fc.constantFrom('FR', 'DE', '', '🎉'),
      partition: fc.integer({ min: 0, max: 11 }),
    });
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 60 }),
        fc.integer({ min: -3_600_000, max: 34 * 3_600_000 }),
        fc.subarray(names),
        fc.boolean(),
        (events, readAt, subset, someAsJson) => {
          const states = new Map<number, PartitionState>();
          for (const e of events) {
            const state = states.get(e.partition) ?? emptyState();
            states.set(e.partition, state);
            // -0 written as JSON reads back as 0: keep the two layouts comparable.
            const values: Record<string, unknown> = { merchant: e.merchant, country: e.country };
            if (e.amount !== undefined) values.amount = e.amount === 0 ? 0 : e.amount;
            applyEvent(group, state, { time: START + e.offset, values });
            if (e.id !== undefined) state.seen.set(e.id, START + e.offset);
          }
          const fields: StoredFields = {};
          for (const [partition, state] of states) {
            Object.assign(fields, someAsJson && partition % 2 === 0 ? jsonFields(partition, state) : stateFields(partition, state));
            fields[`_o${partition}`] = String(partition);
            // The encoding `stateFields` keeps with the state is not part of it.
            expect(decodePartitionState(encodePartitionState(state))).toEqual({ ...state, encoded: undefined });
          }
          const only = new Set(subset);
          const now = START + readAt;
          expect(readFeatureValues(group, fields, now)).toEqual(referenceRead(fields, now));
          expect(readFeatureValues(group, fields, now, only)).toEqual(referenceRead(fields, now, only));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('encodes a state from its kept encoding as it encodes it whole, through any events, prunes and encodes', () => {
    const step = fc.oneof(
      {
        weight: 10,
        arbitrary: fc.record({
          kind: fc.constant('event' as const),
          offset: fc.integer({ min: 0, max: 30 * 3_600_000 }),
          amount: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { nil: undefined }),
          merchant: fc.constantFrom('m1', 'm2', 'm3', 'é'),
          country: fc.constantFrom('FR', 'DE', '', '🎉'),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('prune' as const), offset: fc.integer({ min: 0, max: 32 * 3_600_000 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('encode' as const), offset: fc.integer({ min: 0, max: 32 * 3_600_000 }) }) },
    );
    // Encodings made from a kept one, over all runs: the property must not hold only because none was.
    let fromKept = 0;
    fc.assert(
      fc.property(fc.array(step, { minLength: 30, maxLength: 150 }), (steps) => {
        const state = emptyState();
        for (const s of steps) {
          if (s.kind === 'event') {
            const values: Record<string, unknown> = { merchant: s.merchant, country: s.country };
            if (s.amount !== undefined) values.amount = s.amount;
            applyEvent(group, state, { time: START + s.offset, values });
          } else if (s.kind === 'prune') {
            pruneState(group, state, START + s.offset);
          } else {
            if (state.encoded) fromKept++;
            const kept = stateFields(0, state);
            const whole = { s0: encodePartitionState(state, { eventIds: false }) };
            expect(decodePartitionState(kept.s0!)).toEqual(decodePartitionState(whole.s0));
            expect(readFeatureValues(group, kept, START + s.offset)).toEqual(readFeatureValues(group, whole, START + s.offset));
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(fromKept).toBeGreaterThan(100);
  });

  it('refuses a value of another format, a truncated one, one whose counts it does not hold, or one naming a component it does not list', () => {
    expect(() => decodePartitionState('[2,null,0,0]')).toThrow(/unknown format 2/);
    expect(() => decodePartitionState('{"a":1}')).toThrow(/unknown format/);
    expect(() => decodePartitionState('[1,5,0,1,"*","n","60000:0",1,3,1]')).toThrow(/tile 60000:0 names slot 3 of 1/);
    expect(() => decodePartitionState('[1,5,0,1,"*","n",60000,0,1,0,1]')).toThrow(/expected a tile at element 6/);
    expect(() => decodePartitionState('not json')).toThrow();
    // Counts the value does not hold are refused, not trusted: a loop of 1e15, or an array of 2e9 elements, otherwise.
    expect(() => decodePartitionState('[1,0,5]')).toThrow(/event-id count 5 at element 2 is not one the value holds/);
    expect(() => decodePartitionState('[1,0,1e15]')).toThrow(/event-id count 1000000000000000 at element 2/);
    expect(() => decodePartitionState('[1,0,0,1e9]')).toThrow(/slot count 1000000000 at element 3/);
    expect(() => decodePartitionState('[1,0,0,-1]')).toThrow(/slot count -1/);
    expect(() => decodePartitionState('[1,5,0,1,"*","n","60000:0",1e9]')).toThrow(/expected a tile at element 6/);
    expect(() => decodePartitionState(Buffer.from([9, 0, 0]))).toThrow(/unknown format 9/);
    expect(() => decodePartitionState(Buffer.alloc(0))).toThrow(/unknown format of an empty value/);
    const bytes = encodePartitionState(randomState(8, 20, 5));
    for (const length of [1, 16, 17, 40, bytes.length - 1]) {
      expect(() => decodePartitionState(bytes.subarray(0, length)), `${length} bytes`).toThrow(/stored partition state/);
    }
    const wrongSlot = Buffer.from(bytes);
    wrongSlot.writeUInt16LE(999, 17 + 16 + 2);
    expect(() => decodePartitionState(wrongSlot)).toThrow(/names slot 999/);
    // A newest event time that is no event time (its age would be -Infinity, or the state never stale).
    for (const newest of [Infinity, -Infinity, 1e300, -1, 1.5, 8.64e15 + 1]) {
      const damaged = Buffer.from(bytes);
      damaged.writeDoubleLE(newest, 1);
      expect(() => decodePartitionState(damaged), `binary ${newest}`).toThrow(/newest event time .* is not an event time/);
    }
    for (const newest of ['1e300', '-1', '1.5', '"5"']) {
      expect(() => decodePartitionState(`[1,${newest},0,0]`), `JSON ${newest}`).toThrow(/newest event time/);
    }
    expect(decodePartitionState('[1,null,0,0]').newest).toBeNull();
    expect(decodePartitionState('[1,8640000000000000,0,0]').newest).toBe(8.64e15);
  });
});

describe('pruneSeen', () => {
  it('forgets the ids older than the horizon from the oldest on, and stops at the first younger one', async () => {
    const { emptyState, pruneSeen } = await import('../../src/features/tile-state.js');
    const state = emptyState();
    for (const [id, time] of [
      ['a', 100],
      ['b', 200],
      ['c', 300],
      ['d', 150],
    ] as const)
      state.seen.set(id, time);
    pruneSeen(state.seen, 250);
    // `d` (150) arrived after `c` (300): it stays until the full prune.
    expect([...state.seen.keys()]).toEqual(['c', 'd']);
    pruneSeen(state.seen, 1_000);
    expect([...state.seen.keys()]).toEqual([]);
  });
});
