/**
 * Prometheus metrics helpers. Every service registers its metrics on one registry, which
 * `/metrics` serves; in the embedded default all services share one registry.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export function createRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'tributary_' });
  return registry;
}

/** Returns the metric already registered under `name`, or registers the one `make` builds. */
export function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024];

/** Records sent to the dead-letter topic, by consumer and reason: one metric for every service. */
export function deadLetterCounter(registry: Registry): Counter {
  return metric(
    registry,
    'tributary_dead_letter_records_total',
    () =>
      new Counter({
        name: 'tributary_dead_letter_records_total',
        help: 'Records sent to the dead-letter topic',
        labelNames: ['consumer', 'reason'],
        registers: [registry],
      }),
  );
}
