/**
 * Runs the example in real time: each simulated transaction is scored through the
 * inference API (`request_id` = the event id), published to the transactions topic, and
 * its label published to the labels topic after a random delay, as chargebacks arrive.
 */
import { createRandom, type EventLog, type fraud, type Logger } from '@tributary/shared';
import { createTransactionGenerator } from './generator.js';

export interface SimulatorOptions {
  eventLog: EventLog;
  topics: { transactions: string; labels: string };
  /** Base URL of the inference API; scoring is skipped when null. */
  inferenceUrl: string | null;
  /** The secret of an API key sent with each prediction request (SIMULATOR_API_KEY); none when absent. */
  apiKey?: string;
  ratePerSecond: number;
  fraudRate: number;
  meanLabelDelayMs: number;
  users: number;
  seed: number;
  /** Drift injected from a point on (SIMULATOR_DRIFT); none when absent. */
  drift?: fraud.DriftSchedule;
  logger: Logger;
  /** Labels waiting to be published, at most. */
  maxPendingLabels?: number;
}

export interface SimulatorStats {
  transactions: number;
  fraud: number;
  scored: number;
  scoreErrors: number;
  labels: number;
}

export interface Simulator {
  stats: SimulatorStats;
  stop(): Promise<void>;
}

export function startSimulator(options: SimulatorOptions): Simulator {
  const generator = createTransactionGenerator({
    seed: options.seed,
    users: options.users,
    fraudRate: options.fraudRate,
    drift: options.drift,
  });
  const delays = createRandom(options.seed + 1);
  const stats: SimulatorStats = { transactions: 0, fraud: 0, scored: 0, scoreErrors: 0, labels: 0 };
  const pending = new Set<NodeJS.Timeout>();
  const maxPending = options.maxPendingLabels ?? 100_000;
  let running = true;
  let lastError = 0;

  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;

  const score = async (transaction: ReturnType<typeof generator.next>['transaction']) => {
    if (!options.inferenceUrl) return;
    try {
      const response = await fetch(`${options.inferenceUrl}/v1/predict`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          request_id: transaction.event_id,
          entities: { user_id: transaction.user_id, merchant_id: transaction.merchant_id },
          features: { amount: transaction.amount, country: transaction.country, channel: transaction.channel },
        }),
      });
      if (!response.ok) {
        const hint =
          response.status === 401 ? ' (API_KEYS is set on the inference service: give the simulator one in SIMULATOR_API_KEY)' : '';
        throw new Error(`HTTP ${response.status}: ${await response.text()}${hint}`);
      }
      await response.arrayBuffer();
      stats.scored++;
    } catch (error) {
      stats.scoreErrors++;
      if (Date.now() - lastError > 10_000) {
        lastError = Date.now();
        options.logger.warn({ err: error }, 'simulator: prediction request failed');
      }
    }
  };

  const tick = async () => {
    const { transaction, fraud } = generator.next(Date.now());
    stats.transactions++;
    if (fraud) stats.fraud++;
    await score(transaction);
    await options.eventLog.publish(options.topics.transactions, [{ key: transaction.user_id, value: JSON.stringify(transaction) }]);
    if (pending.size >= maxPending) return;
    const delay = -Math.log(1 - delays.next()) * options.meanLabelDelayMs;
    const timer = setTimeout(() => {
      pending.delete(timer);
      const label = { request_id: transaction.event_id, label: fraud ? 1 : 0, ts: Date.now() };
      options.eventLog
        .publish(options.topics.labels, [{ key: label.request_id, value: JSON.stringify(label) }])
        .then(() => stats.labels++)
        .catch((error: unknown) => options.logger.warn({ err: error }, 'simulator: label publish failed'));
    }, delay);
    timer.unref();
    pending.add(timer);
  };

  const intervalMs = 1000 / options.ratePerSecond;
  let next = performance.now();
  const loop = (async () => {
    while (running) {
      await tick().catch((error: unknown) => options.logger.warn({ err: error }, 'simulator: transaction publish failed'));
      next += intervalMs;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else if (wait < -1000) next = performance.now();
    }
  })();

  return {
    stats,
    stop: async () => {
      running = false;
      await loop;
      for (const timer of pending) clearTimeout(timer);
      pending.clear();
    },
  };
}
