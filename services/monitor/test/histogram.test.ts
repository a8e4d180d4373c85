import { describe, expect, it } from 'vitest';
import { createRandom, createRegistry, Histogram, LATENCY_BUCKETS } from '@tributary/shared';
import { FixedHistogram } from '../src/histogram.js';

/** The same observations in prom-client's Histogram and in FixedHistogram, each in its own registry. */
function side(buckets: number[], observations: [string, string, number][]) {
  const ours = createRegistry({ defaultMetrics: false });
  const theirs = createRegistry({ defaultMetrics: false });
  const fixed = new FixedHistogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['model', 'group'], buckets, registers: [ours] });
  const reference = new Histogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['model', 'group'], buckets, registers: [theirs] });
  observations.forEach(([model, group, value], i) => {
    // Both ways of observing: a kept series, and labels by name.
    if (i % 2 === 0) fixed.seriesOf(model, group).observe(value);
    else fixed.observe({ model, group }, value);
    reference.observe({ model, group }, value);
  });
  return { ours, theirs, fixed, reference };
}

describe('FixedHistogram', () => {
  it('is exposed as prom-client exposes the same observations, values on the bounds and beyond them included', async () => {
    const random = createRandom(11);
    const buckets = [...LATENCY_BUCKETS];
    const observations: [string, string, number][] = [];
    for (let i = 0; i < 2_000; i++) {
      const pick = random.next();
      // Values on the bounds, between them, above the last one, zero and negative.
      const value =
        pick < 0.2
          ? buckets[random.int(buckets.length)]!
          : pick < 0.25
            ? 0
            : pick < 0.3
              ? -random.next()
              : pick < 0.4
                ? 2 + random.next() * 10
                : random.next() * 1.1;
      observations.push([`model-${random.int(3)}`, random.next() < 0.5 ? 'user"s \\ group\n' : 'merchant', value]);
    }
    const { ours, theirs } = side(buckets, observations);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });

  it('forgets its series on reset, refuses values that are not numbers, and bounds that do not increase', async () => {
    const { ours, theirs, fixed, reference } = side([1, 2], [['m', 'g', 1.5]]);
    expect(await ours.metrics()).toMatch(/h_seconds_bucket\{le="2",model="m",group="g"\} 1/);
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(() => fixed.observe({ model: 'm', group: 'g' }, NaN)).toThrow(TypeError);
    expect(() => reference.observe({ model: 'm', group: 'g' }, NaN)).toThrow(TypeError);
    expect(() => fixed.seriesOf('m')).toThrow(/expected 2 label values/);
    expect(() => new FixedHistogram({ name: 'x', help: 'x', labelNames: [], buckets: [1, 1], registers: [] })).toThrow(RangeError);
  });

  it('drops the series retain refuses, names their labels, and starts a series asked for again from zero', async () => {
    const { ours, fixed } = side(
      [1, 2],
      [
        ['m', 'g', 1.5],
        ['n', 'g', 0.5],
      ],
    );
    expect(fixed.retain((series) => series.labels.model === 'n')).toEqual([{ model: 'm', group: 'g' }]);
    const text = await ours.metrics();
    expect(text).not.toMatch(/model="m"/);
    expect(text).toMatch(/h_seconds_count\{model="n",group="g"\} 1/);
    expect(fixed.seriesOf('m', 'g').count).toBe(0);
  });
});
