import { inject } from 'vitest';

/** The real services for this run, or the reason they are missing. */
export function realServices() {
  const kafka = inject('kafkaBrokers');
  const redis = inject('redisUrl');
  const reason = inject('integrationSkipReason') || 'KAFKA_BROKERS / REDIS_URL not set';
  return {
    kafkaBrokers: kafka ? kafka.split(',') : null,
    redisUrl: redis || null,
    missing: (what: 'kafka' | 'redis') => ((what === 'kafka' ? kafka : redis) ? '' : reason),
  };
}
