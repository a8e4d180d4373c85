import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyContextConfig } from 'fastify';
import type { Static } from 'typebox';
import { readFeatureValues, TributaryError, type CompiledFeatureGroup, type EventSource, type OnlineStore, Type } from '@tributary/shared';
import { ErrorResponse } from '../errors.js';
import { readWithin } from '../store-read.js';

export interface FeaturesRouteOptions {
  store: OnlineStore;
  groups: CompiledFeatureGroup[];
  /** The event sources the groups are fed by (their topics and fields, in the catalogue). */
  sources: EventSource[];
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

const FeatureDescription = Type.Object({
  name: Type.String(),
  column: Type.String({ description: 'the source field aggregated, `*` for a count of events' }),
  op: Type.String(),
  window: Type.String({ description: 'the window, as declared (e.g. `1h`)' }),
  window_ms: Type.Integer(),
  tile_ms: Type.Integer({
    description:
      'the tile size: a window read at time t covers [floor((t - window) / tile) * tile, t], up to one tile more than the window',
  }),
  default: Type.Union([Type.Number(), Type.Null()], {
    description:
      "the group's default for the feature when it is missing or stale (a model's manifest may declare its own); null: none declared",
  }),
});

const GroupDescription = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  entity: Type.String({ description: 'the entity type: its key field, or its key fields joined by `+`' }),
  entity_fields: Type.Array(Type.String()),
  source: Type.Object({
    name: Type.String(),
    topic: Type.Union([Type.String(), Type.Null()]),
    event_time_field: Type.Union([Type.String(), Type.Null()]),
    event_id_field: Type.Union([Type.String(), Type.Null()]),
  }),
  ttl: Type.String(),
  ttl_ms: Type.Integer(),
  filters: Type.Array(
    Type.Object({
      field: Type.String(),
      op: Type.String(),
      value: Type.Union([Type.Number(), Type.String(), Type.Array(Type.Union([Type.Number(), Type.String()]))]),
    }),
  ),
  features: Type.Array(FeatureDescription),
});

type GroupDescription = Static<typeof GroupDescription>;

/** A group's definition as the catalogue shows it: what is computed from what, over which windows, with which defaults. */
function describeGroup(group: CompiledFeatureGroup, sources: EventSource[]): GroupDescription {
  const { definition } = group;
  const source = sources.find((s) => s.name === definition.source);
  return {
    name: definition.name,
    version: definition.version,
    entity: group.entity,
    entity_fields: group.entityFields,
    source: {
      name: definition.source,
      topic: source?.topic ?? null,
      event_time_field: source?.eventTimeField ?? null,
      event_id_field: source?.eventIdField ?? null,
    },
    ttl: definition.ttl,
    ttl_ms: group.ttlMs,
    filters: (definition.filters ?? []).map((f) => ({ field: f.field, op: f.op, value: f.value })),
    features: group.features.map((f) => ({
      name: f.name,
      column: f.column,
      op: f.op,
      window: f.window,
      window_ms: f.windowMs,
      tile_ms: f.tileMs,
      default: f.default,
    })),
  };
}

/** The feature catalogue (Feast's `feature-views list`): every feature group the service reads, as defined. */
export const featureGroupsRoute: FastifyPluginAsyncTypebox<FeaturesRouteOptions> = async (app, options) => {
  const described = options.groups.map((g) => describeGroup(g, options.sources));
  const config = options.config ?? {};
  app.get(
    '/v1/feature-groups',
    {
      config,
      schema: {
        summary: 'The feature groups: their entities, sources, windows, aggregations, TTLs and defaults',
        response: {
          200: Type.Object({ groups: Type.Array(GroupDescription) }),
          401: ErrorResponse,
          429: ErrorResponse,
          500: ErrorResponse,
        },
      },
    },
    async () => ({ groups: described }),
  );
  app.get(
    '/v1/feature-groups/:name',
    {
      config,
      schema: {
        summary: 'One feature group, as defined',
        params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: {
          200: GroupDescription,
          400: ErrorResponse,
          401: ErrorResponse,
          404: ErrorResponse,
          429: ErrorResponse,
          500: ErrorResponse,
        },
      },
    },
    async (request) => {
      const group = described.find((g) => g.name === request.params.name);
      if (!group) {
        const known = described.map((g) => g.name).join(', ');
        throw new TributaryError('NOT_FOUND', `no feature group is named "${request.params.name}" (known groups: ${known})`);
      }
      return group;
    },
  );
};

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
