/**
 * Tracing of the feature pipeline: each batch is a `feature_batch` span with its topic,
 * partition and outcome, and the flush it starts is its `feature_flush` child.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLogger,
  createRegistry,
  fraud,
  loadConfig,
  MemoryEventLog,
  MemoryOnlineStore,
  startTracing,
  type Tracing,
} from '@tributary/shared';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../test/support/otlp-receiver.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { startFeaturePipeline, type FeaturePipeline } from '../src/pipeline.js';

const CONSUMER = 5; // OTLP SpanKind SPAN_KIND_CONSUMER
const ERROR = 2; // OTLP StatusCode STATUS_CODE_ERROR

let receiver: OtlpReceiver | null = null;
let tracing: Tracing | null = null;
let pipeline: FeaturePipeline | null = null;
afterEach(async () => {
  await pipeline?.stop();
  await tracing?.stop();
  await receiver?.close();
  pipeline = tracing = receiver = null;
});

const transaction = (i: number, user: string) => ({
  key: user,
  value: JSON.stringify({
    event_id: `e${i}`,
    user_id: user,
    merchant_id: 'm1',
    amount: 10 + i,
    currency: 'USD',
    country: 'US',
    channel: 'web',
    ts: Date.now() - 1_000,
  }),
});

async function run(traced: boolean) {
  receiver = await startOtlpReceiver();
  tracing = await startTracing(loadConfig(traced ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } : {}), {
    service: 'tributary-features',
  });
  const eventLog = new MemoryEventLog();
  const example = fraud.fraudExample();
  const source = example.sources[0]!;
  // One partition's worth: all keyed by the same user, plus a record that is not JSON.
  await eventLog.publish(source.topic, [
    transaction(1, 'u1'),
    transaction(2, 'u1'),
    { key: 'u1', value: 'not json' },
    transaction(3, 'u1'),
  ]);
  pipeline = await startFeaturePipeline({
    eventLog,
    store: new MemoryOnlineStore(),
    sources: example.sources,
    groups: example.groups,
    deadLetterTopic: 'dead-letter',
    allowedLatenessMs: 300_000,
    groupId: 'features',
    registry: createRegistry({ defaultMetrics: false }),
    logger: createLogger('test', 'silent'),
    // Every batch flushes what it applied: its flush is its child.
    flushIntervalMs: 0,
  });
  await waitFor(() => eventLog.records('dead-letter').length === 1, { what: 'the dead letter' });
  await pipeline.flush();
  return { source, eventLog };
}

describe('tracing of the feature pipeline', () => {
  it('makes a span per batch, with its flush as a child', async () => {
    const { source } = await run(true);
    const batch = await waitFor(
      async () => {
        await tracing!.flush();
        // The batch that was applied (a first delivery may fail and be retried).
        return receiver!.spans.find((s) => s.name === 'feature_batch' && s.status.code !== ERROR);
      },
      { what: 'the batch span' },
    );
    expect(batch).toMatchObject({ service: 'tributary-features', kind: CONSUMER, parentSpanId: '' });
    expect(batch.attributes).toMatchObject({
      'messaging.destination.name': source.topic,
      'messaging.consumer.group.name': `features-${source.name}`,
      'messaging.batch.message_count': 4,
      'tributary.events.applied': 3,
      'tributary.events.dead_lettered': 1,
      'tributary.entities.touched': 2, // the user and the merchant
    });
    expect(batch.attributes['messaging.destination.partition.id']).toMatch(/^\d+$/);
    const flush: ReceivedSpan = await waitFor(
      async () => {
        await tracing!.flush();
        return receiver!.spans.find((s) => s.name === 'feature_flush' && s.parentSpanId === batch.spanId);
      },
      { what: "the batch's flush span" },
    );
    expect(flush.traceId).toBe(batch.traceId);
    expect(flush.attributes).toMatchObject({ 'messaging.destination.name': source.topic, 'tributary.entities.written': 2 });
    expect(flush.attributes['tributary.offsets.committed']).toBe(1);
    // Periodic flushes that wrote nothing make no span.
    expect(
      receiver!.spans.filter(
        (s) => s.name === 'feature_flush' && s.attributes['tributary.entities.written'] === 0 && s.parentSpanId === '',
      ),
    ).toEqual([]);
  });

  it('with no endpoint configured, exports nothing', async () => {
    await run(false);
    await tracing!.flush();
    expect(tracing!.endpoint).toBeNull();
    expect(receiver!.requests).toBe(0);
  });
});
