/** The feature service on given connections: the pipeline of every source and the label join. */
import { fraud, type Config, type EventLog, type Logger, type OnlineStore, type Registry } from '@tributary/shared';
import { startLabelJoin } from './label-join.js';
import { startFeaturePipeline } from './pipeline.js';

export interface FeatureService {
  stop(): Promise<void>;
}

export async function startFeatureService(
  config: Config,
  deps: { eventLog: EventLog; store: OnlineStore; registry: Registry; logger: Logger },
): Promise<FeatureService> {
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  // Both join their consumer groups at once (a restart waits for each group's rebalance).
  const [pipeline, labelJoin] = await Promise.allSettled([
    startFeaturePipeline({
      ...deps,
      sources: example.sources,
      groups: example.groups,
      deadLetterTopic: config.TOPIC_DEAD_LETTER,
      allowedLatenessMs: config.ALLOWED_LATENESS,
      groupId: `${config.CONSUMER_GROUP_PREFIX}-features`,
      flushIntervalMs: config.FLUSH_INTERVAL,
    }),
    startLabelJoin({
      ...deps,
      topics: {
        transactions: config.TOPIC_TRANSACTIONS,
        labels: config.TOPIC_LABELS,
        labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS,
      },
      groupId: `${config.CONSUMER_GROUP_PREFIX}-label-join`,
      windowMs: config.LABEL_JOIN_WINDOW,
    }),
  ]);
  if (pipeline.status === 'rejected' || labelJoin.status === 'rejected') {
    // What did start is stopped: the caller gets no service to stop.
    await Promise.all([pipeline, labelJoin].map((part) => (part.status === 'fulfilled' ? part.value.stop().catch(() => undefined) : null)));
    throw pipeline.status === 'rejected' ? pipeline.reason : (labelJoin as PromiseRejectedResult).reason;
  }
  return {
    stop: async () => {
      await Promise.all([pipeline.value.stop(), labelJoin.value.stop()]);
    },
  };
}
