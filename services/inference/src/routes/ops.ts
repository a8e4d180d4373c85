import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EventLog, OnlineStore, Registry } from '@tributary/shared';

export interface OpsRouteOptions {
  registry: Registry;
  store: OnlineStore;
  eventLog: EventLog;
}

/** `/healthz`: the process serves. `/readyz`: the online store and event log answer. `/metrics`. */
export const opsRoutes: FastifyPluginAsyncTypebox<OpsRouteOptions> = async (app, options) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  let eventLogCheckedAt = 0;
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await options.store.ping();
      if (Date.now() - eventLogCheckedAt > 5_000) {
        await options.eventLog.ping();
        eventLogCheckedAt = Date.now();
      }
      return { status: 'ready' };
    } catch (error) {
      return reply.status(503).send({ status: 'not ready', reason: (error as Error).message });
    }
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const text = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(text);
  });
};
