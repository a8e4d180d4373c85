/** Boots the whole inference app on in-memory parts for `app.inject` tests. */
import {
  createLogger,
  createRegistry,
  loadConfig,
  MemoryEventLog,
  MemoryOnlineStore,
  type EventLog,
  type OnlineStore,
} from '@tributary/shared';
import type { RoutingStore } from '../src/registry/routing.js';
import { createInferenceApp } from '../src/service.js';

export async function buildTestApp(
  options: { env?: Record<string, string>; store?: OnlineStore; eventLog?: EventLog; routes?: RoutingStore } = {},
) {
  // No shedding on event-loop delay unless a test asks for it: test machines stall at times.
  const config = loadConfig({ LOG_LEVEL: 'silent', SHED_EVENT_LOOP_DELAY_MS: '0', ...options.env });
  const eventLog = options.eventLog ?? new MemoryEventLog();
  const store = options.store ?? new MemoryOnlineStore();
  const registry = createRegistry({ defaultMetrics: false });
  const app = await createInferenceApp(config, {
    eventLog,
    store,
    registry,
    logger: createLogger('test', 'silent'),
    ...(options.routes ? { routes: options.routes } : {}),
  });
  return { app, eventLog, store, registry, config };
}

export const validRequest = {
  request_id: 't-1',
  entities: { user_id: 'u_1', merchant_id: 'm_1' },
  features: { amount: 125.5, country: 'US', channel: 'web' },
};

/**
 * Routes the model to `version` as another replica (or the CLI) would: straight into the shared
 * routing, without this replica checking its copy of the version; then this replica follows.
 */
export async function routeFromElsewhere(app: Awaited<ReturnType<typeof buildTestApp>>['app'], version: string): Promise<void> {
  const routing = (await app.models.routing('fraud_detector'))!;
  const revision = routing.revision + 1;
  await app.models.routes.update({ ...routing, champion: version, previous: [routing.champion], revision }, routing.revision, {
    at: new Date().toISOString(),
    by: 'other-replica',
    action: 'promote',
    reason: 'test',
    from: routing.champion,
    to: version,
    revision,
  });
  await app.serving.refresh();
}
