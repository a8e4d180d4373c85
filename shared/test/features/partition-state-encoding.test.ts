/**
 * The stored encoding of a partition's state (`s<partition>`, one JSON array of numbers and
 * strings): every component round-trips exactly, sketches in both modes, event ids with any
 * characters; values this version cannot read are refused with a message.
 */
import { describe, expect, it } from 'vitest';
import { compileFeatureGroup, type FeatureGroup } from '../../src/features/definition.js';
import { encodeSketch } from '../../src/features/distinct-sketch.js';
import {
  applyEvent,
  decodePartitionState,
  emptyState,
  encodePartitionState,
  parsePartitionState,
  readFeatureValues,
  stateField,
  stateFields,
  type PartitionState,
} from '../../src/features/tile-state.js';
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
    applyEvent(group, state, { id: `e${seed}-${i}`, time: START + random.int(30 * 3_600_000), values });
  }
  return state;
}

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
      expect(encodePartitionState(decoded)).toBe(encodePartitionState(state));
    }
  });

  it('keeps event ids with any characters and their times, and a state with no events', () => {
    const state = emptyState();
    const ids = ['a', 'with space', 'q"uote', 'back\\slash', 'sep|ar:ated,', '\u0000nul', 'émoji 🎉', ''];
    ids.forEach((id, i) => applyEvent(group, state, { id, time: START + i, values: { amount: i } }));
    const decoded = decodePartitionState(encodePartitionState(state));
    expect([...decoded.seen]).toEqual(ids.map((id, i) => [id, START + i]));
    expect(decodePartitionState(encodePartitionState(emptyState()))).toEqual(emptyState());
  });

  it('is one field per partition, which a partition reads back alone and a read merges', () => {
    const a = randomState(4, 30, 10);
    const b = randomState(5, 30, 10);
    const fields: Record<string, string> = { ...stateFields(0, a), ...stateFields(12, b), _o0: '5', _o12: '9' };
    expect(Object.keys(fields).sort()).toEqual(['_o0', '_o12', 's0', 's12']);
    expect(fields[stateField(12)]).toBe(encodePartitionState(b));
    expect(parsePartitionState(12, fields)).toEqual(b);
    expect(parsePartitionState(3, fields)).toEqual(emptyState());
    const now = START + 30 * 3_600_000;
    const read = readFeatureValues(group, fields, now);
    const both = readFeatureValues(group, { ...stateFields(0, a), ...stateFields(12, b) }, now);
    expect(read).toEqual(both);
    expect(read.newestEventTime).toBe(Math.max(a.newest!, b.newest!));
    expect(read.values.count_24h).toBe(
      (readFeatureValues(group, stateFields(0, a), now).values.count_24h as number) +
        (readFeatureValues(group, stateFields(0, b), now).values.count_24h as number),
    );
  });

  it('refuses a value of another format or naming a component it does not list', () => {
    expect(() => decodePartitionState('[2,null,0,0]')).toThrow(/unknown format 2/);
    expect(() => decodePartitionState('{"a":1}')).toThrow(/unknown format/);
    expect(() => decodePartitionState('[1,5,0,1,"*","n","60000:0",1,3,1]')).toThrow(/tile 60000:0 names slot 3 of 1/);
    expect(() => decodePartitionState('[1,5,0,1,"*","n",60000,0,1,0,1]')).toThrow(/expected a tile at element 6/);
    expect(() => decodePartitionState('not json')).toThrow();
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
    pruneSeen(state, 250);
    // `d` (150) arrived after `c` (300): it stays until the full prune.
    expect([...state.seen.keys()]).toEqual(['c', 'd']);
    pruneSeen(state, 1_000);
    expect([...state.seen.keys()]).toEqual([]);
  });
});
