/** The feature service on given connections: the pipeline of every source and the label join. */
import { fraud, type Config, type EventLog, type Logger, type OnlineStore, type Registry } from '@tributary/shared';
import { startLabelJoin } from './label-join.js';
import { startFeaturePipeline } from './pipeline.js';
import { startTogether } from './start-together.js';

export interface FeatureService {
  stop(): Promise<void>;
}

export async function startFeatureService(
  config: Config,
  deps: { eventLog: EventLog; store: OnlineStore; registry: Registry; logger: Logger },
): Promise<FeatureService> {
  const example = fraud.fraudExample({ transactions: config.TOPIC_TRANSACTIONS, labelledTransactions: config.TOPIC_LABELLED_TRANSACTIONS });
  const parts = await startTogether<{ stop(): Promise<void> }>([
    startFeaturePipeline({
      ...deps,
      sources: example.sources,
      groups: example.groups,
      deadLetterTopic: config.TOPIC_DEAD_LETTER,
      allowedLatenessMs: config.ALLOWED_LATENESS,
      groupId: `${config.CONSUMER_GROUP_PREFIX}-features`,
      flushIntervalMs: config.FLUSH_INTERVAL,
      cacheBytes: config.FEATURE_CACHE_MB > 0 ? config.FEATURE_CACHE_MB * 2 ** 20 : undefined,
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
      maxAheadMs: config.ALLOWED_LATENESS / 2,
    }),
  ]);
  return {
    stop: async () => {
      await Promise.all(parts.map((part) => part.stop()));
    },
  };
}
