import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyContextConfig } from 'fastify';
import Type from 'typebox';
import { readFeatureValues, TributaryError, type CompiledFeatureGroup, type OnlineStore } from '@tributary/shared';
import { ErrorResponse } from '../errors.js';
import { readWithin } from '../store-read.js';

export interface FeaturesRouteOptions {
  store: OnlineStore;
  groups: CompiledFeatureGroup[];
  /** Longest wait for the online store (FEATURE_FETCH_TIMEOUT_MS); beyond, 503. */
  fetchTimeoutMs: number;
  config?: FastifyContextConfig;
}

const GroupValues = Type.Object({
  group: Type.String(),
  version: Type.Integer(),
  values: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Null()])),
  newest_event_time: Type.Union([Type.String(), Type.Null()]),
  freshness_ms: Type.Union([Type.Number(), Type.Null()]),
  error: Type.Optional(
    Type.String({ description: "why the group's stored state could not be read (its values are then null); absent when it was read" }),
  ),
});

/** An entity's current feature values, with the age of the newest event behind them. */
export const featuresRoute: FastifyPluginAsyncTypebox<FeaturesRouteOptions> = async (app, options) => {
  app.get(
    '/v1/features/:entity/:id',
    {
      config: options.config ?? {},
      schema: {
        summary: "An entity's current feature values and freshness",
        params: Type.Object({ entity: Type.String(), id: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: {
          200: Type.Object({ entity: Type.String(), id: Type.String(), groups: Type.Array(GroupValues) }),
          400: ErrorResponse,
          401: ErrorResponse,
          404: ErrorResponse,
          414: ErrorResponse,
          429: ErrorResponse,
          500: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request) => {
      const { entity, id } = request.params;
      const groups = options.groups.filter((g) => g.entity === entity);
      if (groups.length === 0) {
        const known = [...new Set(options.groups.map((g) => g.entity))].join(', ');
        throw new TributaryError('NOT_FOUND', `no feature group is keyed by "${entity}" (known entities: ${known})`);
      }
      let states: (Record<string, string | Buffer> | null)[];
      try {
        states = await readWithin(
          options.store,
          groups.map((g) => ({ group: g.id, entity, id })),
          options.fetchTimeoutMs,
        );
      } catch (error) {
        throw new TributaryError('ONLINE_STORE_UNAVAILABLE', `online store unavailable: ${(error as Error).message}`, { cause: error });
      }
      const now = Date.now();
      return {
        entity,
        id,
        groups: groups.map((group, i) => {
          let read: ReturnType<typeof readFeatureValues>;
          try {
            read = readFeatureValues(group, states[i] ?? null, now);
          } catch (error) {
            // One malformed stored state: this group answers without values, the others as read.
            const message = `stored state unreadable: ${(error as Error).message}`;
            request.log.warn({ err: error, group: group.definition.name, entity, id }, message);
            return {
              group: group.definition.name,
              version: group.definition.version,
              values: Object.fromEntries(group.features.map((f) => [f.name, null])),
              newest_event_time: null,
              freshness_ms: null,
              error: message,
            };
          }
          const { values, newestEventTime } = read;
          return {
            group: group.definition.name,
            version: group.definition.version,
            values,
            newest_event_time: newestEventTime === null ? null : new Date(newestEventTime).toISOString(),
            freshness_ms: newestEventTime === null ? null : now - newestEventTime,
          };
        }),
      };
    },
  );
};
