import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { deepCheckAsked, dependencyChecks, readinessAnswer, type EventLog, type OnlineStore, type Registry } from '@tributary/shared';
import type { RewardStore } from '../registry/rewards.js';
import type { RoutingStore } from '../registry/routing.js';

export interface OpsRouteOptions {
  registry: Registry;
  store: OnlineStore;
  eventLog: EventLog;
  /** Where the replica reads the routing it follows. */
  routes: RoutingStore;
  /** Where the bandits' rewards are kept. */
  rewards: RewardStore;
  /** The model version this replica answers with (its model is loaded before the app exists). */
  model(): { name: string; version: string };
  /** Why the replica should not be sent requests although it could answer them, or null. */
  notReady(): string | null;
}

/**
 * `/healthz`: the process serves. `/readyz`: this replica can serve predictions: its model is
 * loaded (before the app exists), it serves the version the routing names (not the guess it
 * starts on when the routing cannot be read) and it is not shutting down (from the moment it
 * closes, the service answers every request 503). Redis (the online, routing and reward
 * stores) and Kafka are reported in the body, not required: without them the replica still
 * answers (degraded predictions, the prediction log buffered, the routing and the bandits'
 * rewards it last read followed), and a readiness that failed on a shared dependency would
 * take every replica out of the Service at once. Overload is not counted either: shedding
 * already answers the excess with a quick 503, and taking an overloaded replica out would pour
 * its load onto the others.
 * `/readyz?deep=true`: for operators, 503 while a dependency is down. `/metrics`.
 */
export const opsRoutes: FastifyPluginAsyncTypebox<OpsRouteOptions> = async (app, options) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  const checkDependencies = dependencyChecks({
    online_store: { ping: () => options.store.ping() },
    // Kafka's admin request costs more than a Redis PING: asked at most every 5 s.
    event_log: { ping: () => options.eventLog.ping(), reuseMs: 5_000 },
    routing_store: { ping: () => options.routes.ping() },
    reward_store: { ping: () => options.rewards.ping() },
  });
  app.get('/readyz', { schema: { hide: true } }, async (request, reply) => {
    const deep = deepCheckAsked((request.query as Record<string, string | string[] | undefined>).deep);
    if (deep === null) return reply.status(400).send({ code: 'BAD_REQUEST', message: 'deep must be true or false' });
    const report = await checkDependencies();
    const answer = readinessAnswer(options.notReady(), report, deep, { model: options.model() });
    return reply.status(answer.status).send(answer.body);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const text = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(text);
  });
};
