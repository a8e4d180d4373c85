/**
 * The online system on in-memory parts, driven as the simulator drives it: transactions are
 * scored through POST /v1/predict (the real app, its predictor and ONNX model), then
 * published to the transactions topic, which the real feature pipeline applies to the
 * online store before the next request. Each request is served at its transaction's time
 * (the clock is set to it while the request is served), so that offline tools can be asked
 * for the same instants.
 */
import { vi } from 'vitest';
import { startFeaturePipeline } from '@tributary/features';
import { createLogger, createRandom, createRegistry, fraud, MemoryEventLog, MemoryOnlineStore } from '@tributary/shared';
import { buildTestApp } from '../../inference/test/build.js';
import { waitFor } from '../../../test/support/wait-for.js';

export interface ScoredRequest {
  body: {
    request_id: string;
    entities: { user_id: string; merchant_id: string };
    features: { amount: number; country: string; channel: string };
  };
  at: number;
  score: number;
  features: Record<string, number>;
}

export interface OnlineScenario {
  app: Awaited<ReturnType<typeof buildTestApp>>['app'];
  eventLog: MemoryEventLog;
  store: MemoryOnlineStore;
  /** Every transaction published, in time order. */
  transactions: fraud.Transaction[];
  scored: ScoredRequest[];
  /** Scores a request at a given time through the app (POST /v1/predict?explain=true). */
  predictAt(body: ScoredRequest['body'], at: number): Promise<ScoredRequest>;
  close(): Promise<void>;
}

/** `count` transactions over the last `spanMs` (ending a minute ago); every `scoreEvery`-th is scored first. */
export async function startOnlineScenario(options: {
  count: number;
  spanMs: number;
  scoreEvery: number;
  seed: number;
}): Promise<OnlineScenario> {
  const eventLog = new MemoryEventLog();
  const store = new MemoryOnlineStore();
  const { app, config } = await buildTestApp({ eventLog, store });
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const registry = createRegistry({ defaultMetrics: false });
  const pipeline = await startFeaturePipeline({
    eventLog,
    store,
    sources: example.sources,
    groups: example.groups,
    deadLetterTopic: config.TOPIC_DEAD_LETTER,
    allowedLatenessMs: config.ALLOWED_LATENESS,
    groupId: 'scenario-features',
    registry,
    logger: createLogger('scenario', 'silent'),
    flushIntervalMs: 10,
  });
  const consumed = async () => {
    const text = (await registry.getSingleMetricAsString('tributary_pipeline_events_total')) ?? '';
    return [...text.matchAll(/\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  };
  let published = 0;

  const predictAt = async (body: ScoredRequest['body'], at: number): Promise<ScoredRequest> => {
    await waitFor(async () => (await consumed()) >= published, { timeoutMs: 10_000, what: `the pipeline to apply ${published} events` });
    await pipeline.flush();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(at);
    try {
      const response = await app.inject({ method: 'POST', url: '/v1/predict?explain=true', payload: body });
      if (response.statusCode !== 200) throw new Error(`POST /v1/predict: ${response.statusCode} ${response.body}`);
      const answer = response.json() as { score: number; explanation: { name: string; value: number }[] };
      return { body, at, score: answer.score, features: Object.fromEntries(answer.explanation.map((e) => [e.name, e.value])) };
    } finally {
      vi.useRealTimers();
    }
  };

  const random = createRandom(options.seed);
  const start = Date.now() - 60_000 - options.spanMs;
  const transactions: fraud.Transaction[] = [];
  const scored: ScoredRequest[] = [];
  for (let i = 0; i < options.count; i++) {
    const transaction: fraud.Transaction = {
      event_id: `t${i}`,
      user_id: `u${random.int(3)}`,
      merchant_id: `m${random.int(2)}`,
      amount: Math.round(random.next() * 50_000) / 100,
      currency: 'EUR',
      country: random.next() < 0.7 ? 'FR' : 'DE',
      channel: (['web', 'app', 'pos'] as const)[random.int(3)]!,
      ts: start + Math.round((i * options.spanMs) / options.count),
    };
    if (i % options.scoreEvery === options.scoreEvery - 1) {
      const { event_id, user_id, merchant_id, amount, country, channel } = transaction;
      scored.push(
        await predictAt(
          { request_id: event_id, entities: { user_id, merchant_id }, features: { amount, country, channel } },
          transaction.ts as number,
        ),
      );
    }
    await eventLog.publish(config.TOPIC_TRANSACTIONS, [{ key: transaction.user_id, value: JSON.stringify(transaction) }]);
    published++;
    transactions.push(transaction);
  }
  await waitFor(async () => (await consumed()) >= published, { timeoutMs: 10_000, what: `the pipeline to apply ${published} events` });
  await pipeline.flush();
  await app.predictionLog.flush();

  return {
    app,
    eventLog,
    store,
    transactions,
    scored,
    predictAt,
    close: async () => {
      await pipeline.stop();
      await app.close();
    },
  };
}
