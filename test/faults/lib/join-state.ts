/**
 * What the monitor's join store in Redis holds for a request (`<prefix>join:{<request id>}`),
 * read by the verifiers. Two layouts are understood: one prediction per request (fields
 * `prediction`, `label`, and `joined` once joined) and one per prediction unit (fields
 * `p:<unit>` a prediction until its deadline, waiting unless `j:<unit>` says it is joined,
 * `label` until its deadline, `labelled` once it joined).
 */
import type { Redis } from 'ioredis';

export interface JoinState {
  /** The label joined a prediction. */
  joined: boolean;
  /** A prediction waits for its label. */
  predictionWaiting: boolean;
  /** A label waits for its prediction (it joined none). */
  labelWaiting: boolean;
  fields: string[];
}

export function joinState(hash: Record<string, string>): JoinState {
  const fields = Object.keys(hash);
  const joined = 'joined' in hash || 'labelled' in hash || fields.some((f) => f.startsWith('j:'));
  return {
    joined,
    predictionWaiting: 'prediction' in hash || fields.some((f) => f.startsWith('p:') && !(`j:${f.slice(2)}` in hash)),
    labelWaiting: 'label' in hash && !joined,
    fields,
  };
}

/** The join-store state of each request, in one round trip. */
export async function joinStates(redis: Redis, prefix: string, requestIds: string[]): Promise<JoinState[]> {
  const pipeline = redis.pipeline();
  for (const id of requestIds) pipeline.hgetall(`${prefix}join:{${id}}`);
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, hash]) => {
    if (error) throw error;
    return joinState(hash as Record<string, string>);
  });
}
