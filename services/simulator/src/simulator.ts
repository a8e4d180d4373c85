/**
 * Runs the example in real time: each simulated transaction is scored through the
 * inference API (`request_id` = the event id), then published to the transactions topic, and
 * its label published to the labels topic after a random delay, as chargebacks arrive.
 *
 * Open loop, as clients are: transactions leave at their rate whatever the latency of the
 * services, each on its own way, so an outage sees the traffic it would see in production. At
 * most `maxInFlight` are on their way; beyond, a transaction is dropped (counted) instead
 * of sent, so a simulator facing a service that is down does not grow without bound.
 *
 * Its stop waits for what is on its way (transactions, labels that came due) up to a deadline
 * (`stopTimeoutMs`), as the orchestrators that stop it wait a few seconds only: a broker that is
 * down holds a publish for ~40 s of retries. What has not left by then is given up and counted.
 */
import { randomBytes } from 'node:crypto';
import { createRandom, giveUpSignal, type EventLog, type fraud, type Logger } from '@tributary/shared';
import { createTransactionGenerator, type SimulatedTransaction } from './generator.js';
import { topicBatches } from './topic-batches.js';

/** The longest a prediction request waits for its answer. */
const PREDICT_TIMEOUT_MS = 10_000;
/**
 * How long a record waits for others to leave with it (topic-batches.ts). Labels come one at a
 * time, each on its own timer: sent as they come, at 200 a second, they made a topic of
 * one-record batches, which readers fetch a few batches at a time. A transaction waits less:
 * its features are read soon after.
 */
const LABEL_LINGER_MS = 50;
const TRANSACTION_LINGER_MS = 10;
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
  /**
   * The run, in the event ids (`e_<seed>_<run>_<n>`, generator.ts). Default: drawn at start (the
   * start time and a random part), so that a restarted simulator does not send the ids of its
   * previous run again: the pipeline would drop its transactions as repeated, and the label
   * join its labels.
   */
  run?: string;
  /** Drift injected from a point on (SIMULATOR_DRIFT); none when absent. */
  drift?: fraud.DriftSchedule;
  logger: Logger;
  /** Labels waiting for their time, at most; beyond, a transaction's label is dropped (counted). Default 100,000. */
  maxPendingLabels?: number;
  /** Transactions on their way (scored, then published) at most (SIMULATOR_MAX_IN_FLIGHT); beyond, dropped. Default 1000. */
  maxInFlight?: number;
  /**
   * How long stop() waits for the transactions on their way and the labels that came due; then
   * it gives them up, counted as publish errors. Default 5 s: below the 10 s that Docker and
   * Kubernetes wait after SIGTERM.
   */
  stopTimeoutMs?: number;
}

export interface SimulatorStats {
  /** Transactions sent (scored, then published). */
  transactions: number;
  fraud: number;
  scored: number;
  scoreErrors: number;
  /** Transactions whose publish failed, or was given up at the stop's deadline (their labels are not sent). */
  publishErrors: number;
  labels: number;
  /** Labels not sent because `maxPendingLabels` were waiting for their time. */
  labelsDropped: number;
  /** Labels whose publish failed, or was given up at the stop's deadline. */
  labelPublishErrors: number;
  /** Labels not yet due when the simulator stopped: not sent (a stop does not wait for their delays). */
  labelsNotDue: number;
  /** Transactions not sent because `maxInFlight` were on their way. */
  dropped: number;
  /** Transactions on their way now. */
  inFlight: number;
}

export interface Simulator {
  /** The run in this simulator's event ids. */
  run: string;
  stats: SimulatorStats;
  stop(): Promise<void>;
}

/** A run unlike any other start's: the start time (base 36) and 16 random bits. */
const drawRun = () => `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;

export function startSimulator(options: SimulatorOptions): Simulator {
  const run = options.run ?? drawRun();
  const generator = createTransactionGenerator({
    seed: options.seed,
    run,
    users: options.users,
    fraudRate: options.fraudRate,
    drift: options.drift,
  });
  const delays = createRandom(options.seed + 1);
  const inFlight = new Set<Promise<void>>();
  const stats: SimulatorStats = {
    transactions: 0,
    fraud: 0,
    scored: 0,
    scoreErrors: 0,
    publishErrors: 0,
    labels: 0,
    labelsDropped: 0,
    labelPublishErrors: 0,
    labelsNotDue: 0,
    dropped: 0,
    get inFlight() {
      return inFlight.size;
    },
  };
  const pending = new Set<NodeJS.Timeout>();
  const maxPending = options.maxPendingLabels ?? 100_000;
  const maxInFlight = options.maxInFlight ?? 1000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 5000;
  /** Label publishes not yet settled. */
  const labelsOnTheirWay = new Set<Promise<void>>();
  /** Given up at the stop's deadline: every transaction still on its way fails, its prediction request cancelled. */
  const stopping = giveUpSignal();
  const publishTransaction = topicBatches(options.eventLog, options.topics.transactions, TRANSACTION_LINGER_MS);
  const publishLabel = topicBatches(options.eventLog, options.topics.labels, LABEL_LINGER_MS);

  /** A warning of each kind at most every 10 s: an outage fails every transaction. */
  const warnedAt = new Map<string, number>();
  const warn = (message: string, fields: object) => {
    if (Date.now() - (warnedAt.get(message) ?? -Infinity) < 10_000) return;
    warnedAt.set(message, Date.now());
    options.logger.warn(fields, message);
  };

  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;

  const predict = async (transaction: SimulatedTransaction['transaction'], signal: AbortSignal) => {
    const response = await fetch(`${options.inferenceUrl}/v1/predict`, {
      method: 'POST',
      headers,
      signal,
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
  };

  const score = async (transaction: SimulatedTransaction['transaction']) => {
    if (!options.inferenceUrl) return;
    // A service that takes the connection and never answers would otherwise hold the transaction (and stop()) for minutes.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`no answer within ${PREDICT_TIMEOUT_MS} ms`)), PREDICT_TIMEOUT_MS);
    try {
      // Cancelled at the stop's deadline as well, the response's body included.
      await stopping.until(predict(transaction, deadline.signal), (reason) => deadline.abort(reason));
      stats.scored++;
    } catch (error) {
      // Cancelled by the stop: the transaction is counted as given up instead.
      if (stopping.reason !== undefined) return;
      stats.scoreErrors++;
      warn('simulator: prediction request failed', { err: error });
    } finally {
      clearTimeout(timer);
    }
  };

  const label = ({ transaction, fraud }: SimulatedTransaction, delay: number) => {
    if (pending.size >= maxPending) {
      stats.labelsDropped++;
      warn('simulator: labels dropped: maxPendingLabels are waiting for their time (a high rate or a long label delay)', {
        labelsDropped: stats.labelsDropped,
        maxPendingLabels: maxPending,
      });
      return;
    }
    const timer = setTimeout(() => {
      pending.delete(timer);
      const record = { request_id: transaction.event_id, label: fraud ? 1 : 0, ts: Date.now() };
      const sent: Promise<void> = publishLabel({ key: record.request_id, value: JSON.stringify(record) })
        .then(
          () => void stats.labels++,
          (error: unknown) => {
            stats.labelPublishErrors++;
            warn('simulator: label publish failed', { err: error, labelPublishErrors: stats.labelPublishErrors });
          },
        )
        .finally(() => labelsOnTheirWay.delete(sent));
      labelsOnTheirWay.add(sent);
    }, delay);
    timer.unref();
    pending.add(timer);
  };

  /** One transaction on its way: scored, then published (its prediction sees the features from before it), then labelled later. */
  const send = () => {
    if (inFlight.size >= maxInFlight) {
      stats.dropped++;
      warn('simulator: transactions dropped: SIMULATOR_MAX_IN_FLIGHT are on their way (a service is slow or down)', {
        dropped: stats.dropped,
        maxInFlight,
      });
      return;
    }
    const simulated = generator.next(Date.now());
    const { transaction } = simulated;
    stats.transactions++;
    if (simulated.fraud) stats.fraud++;
    // Drawn now, in the order of the transactions, whatever the order they finish in.
    const delay = -Math.log(1 - delays.next()) * options.meanLabelDelayMs;
    const way: Promise<void> = stopping
      .until(score(transaction).then(() => publishTransaction({ key: transaction.user_id, value: JSON.stringify(transaction) })))
      .then(
        () => label(simulated, delay),
        (error: unknown) => {
          stats.publishErrors++;
          warn('simulator: transaction publish failed', { err: error });
        },
      )
      .finally(() => {
        inFlight.delete(way);
      });
    inFlight.add(way);
  };

  // The schedule: the nth transaction is due (n - 1) / rate seconds after the start. A stall of
  // the simulator's own process of more than a second is not made up: the schedule skips ahead.
  const started = performance.now();
  let scheduled = 0;
  const tick = () => {
    const due = Math.floor(((performance.now() - started) * options.ratePerSecond) / 1000) + 1;
    if (due - scheduled > Math.max(1, options.ratePerSecond)) scheduled = due - 1;
    for (; scheduled < due; scheduled++) send();
  };
  const clock = setInterval(tick, Math.max(10, 1000 / options.ratePerSecond));
  tick();

  return {
    run,
    stats,
    stop: async () => {
      clearInterval(clock);
      const clearPending = () => {
        for (const timer of pending) clearTimeout(timer);
        stats.labelsNotDue += pending.size;
        pending.clear();
      };
      const finished = (async () => {
        await Promise.all(inFlight);
        clearPending();
        // Labels that came due, lingering in their batch.
        await Promise.all(labelsOnTheirWay);
        return true;
      })();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), stopTimeoutMs)));
      const done = await Promise.race([finished, late]);
      clearTimeout(timer);
      if (done) return;
      const error = new Error(`given up: not published within the simulator's stop deadline (${stopTimeoutMs} ms)`);
      const transactions = inFlight.size;
      clearPending();
      stopping.giveUp(error);
      publishTransaction.abandon(error);
      const labels = publishLabel.abandon(error);
      // Each settles at once now: counted before stop resolves.
      await Promise.all([...inFlight, ...labelsOnTheirWay]);
      options.logger.warn(
        { transactions, labels, stopTimeoutMs },
        'simulator: stopped with transactions and labels not yet published: given up, counted as publish errors',
      );
    },
  };
}
