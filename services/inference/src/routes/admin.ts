/**
 * The admin API of the model registry: list, register, promote, roll back, roll out (canary,
 * A/B, bandit, shadows), reward feedback, audit. Admin keys only.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MODEL_NAME_MAX_LENGTH, MODEL_VERSION_MAX_LENGTH, REASON_MAX_LENGTH, TributaryError, Type } from '@tributary/shared';
import { ErrorResponse } from '../errors.js';
import { ModelLoadError, parseManifest } from '../model.js';
import type { ModelRegistry } from '../registry/registry.js';
import { MAX_ROLLOUT_VERSIONS } from '../registry/rollout.js';
import type { RewardStore } from '../registry/rewards.js';

export interface AdminRouteOptions {
  registry: ModelRegistry;
  /** The model this replica serves, and a way to follow a routing change at once. */
  served: { name: string; version(): string; refresh(): Promise<void> };
  /** Largest accepted registration body (the ONNX file, base64). */
  bodyLimit: number;
  rewards: RewardStore;
}

const Name = Type.Object({ name: Type.String({ minLength: 1, maxLength: MODEL_NAME_MAX_LENGTH }) });
const Reason = Type.String({
  minLength: 1,
  maxLength: REASON_MAX_LENGTH,
  // One line: a line break would print as a forged line of the audit log.
  pattern: '^[^\\u0000-\\u001f\\u007f]*$',
  description: 'why: kept in the audit log (one line, no control characters)',
});
const VersionName = Type.String({ minLength: 1, maxLength: MODEL_VERSION_MAX_LENGTH });
const Policy = Type.Union(
  [
    Type.Object({ kind: Type.Literal('champion') }, { additionalProperties: false, description: 'the champion answers every request' }),
    Type.Object(
      { kind: Type.Literal('canary'), version: VersionName, percent: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 100 }) },
      { additionalProperties: false, description: 'a share of requests (by a hash of the request id) goes to the canary' },
    ),
    Type.Object(
      {
        kind: Type.Literal('ab'),
        arms: Type.Array(
          Type.Object({ version: VersionName, weight: Type.Number({ exclusiveMinimum: 0 }) }, { additionalProperties: false }),
          { minItems: 2, maxItems: MAX_ROLLOUT_VERSIONS },
        ),
        entity: Type.Optional(
          Type.String({ minLength: 1, maxLength: 64, description: 'the entity key whose id picks the arm (default: the first)' }),
        ),
      },
      { additionalProperties: false, description: 'arms with weights, sticky per entity id' },
    ),
    Type.Object(
      { kind: Type.Literal('bandit'), versions: Type.Array(VersionName, { minItems: 2, maxItems: MAX_ROLLOUT_VERSIONS }) },
      { additionalProperties: false, description: 'Thompson sampling across versions, from reward feedback' },
    ),
  ],
  { description: 'how requests are shared between the champion and other versions' },
);
const Routing = Type.Object({
  model: Type.String(),
  champion: Type.String(),
  previous: Type.Array(Type.String()),
  policy: Type.Optional(Policy),
  shadows: Type.Optional(Type.Array(Type.String())),
  revision: Type.Integer(),
  updated_at: Type.String(),
  updated_by: Type.String(),
  reason: Type.String(),
});
const Version = Type.Object({
  version: Type.String(),
  created_at: Type.String(),
  features: Type.Integer(),
  sha256: Type.String(),
  training: Type.Record(Type.String(), Type.Unknown()),
});
const ERRORS = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  413: ErrorResponse,
  414: ErrorResponse,
  415: ErrorResponse,
  422: ErrorResponse,
  500: ErrorResponse,
  503: ErrorResponse,
};

export const adminRoutes: FastifyPluginAsyncTypebox<AdminRouteOptions> = async (app, options) => {
  const { registry, served } = options;
  const config = { access: 'admin' as const };
  const followIfServed = async (name: string) => {
    if (name === served.name) await served.refresh();
  };
  /**
   * Before a change: this replica reads the routing first, so that a routing the store has lost
   * is written back from what it serves, not initialised from the highest registered version.
   */
  const readFirst = followIfServed;
  /** The model's versions, damaged version folders and routing; NOT_FOUND when it has none of them. */
  const known = async (name: string) => {
    const [{ versions, damaged }, routing] = await Promise.all([registry.inventory(name), registry.routing(name)]);
    if (versions.length === 0 && damaged.length === 0 && !routing)
      throw new TributaryError('NOT_FOUND', `no model ${name} in the registry`);
    return { routing, versions, damaged };
  };

  app.get(
    '/admin/models/:name',
    {
      config,
      schema: {
        summary: 'The versions of a model, its routing and the version this replica serves',
        params: Name,
        response: {
          200: Type.Object({
            name: Type.String(),
            serving: Type.Union([Type.String(), Type.Null()], { description: 'the version this replica serves' }),
            routing: Type.Union([Routing, Type.Null()]),
            versions: Type.Array(Version),
            damaged: Type.Array(Type.Object({ version: Type.String(), reason: Type.String() }), {
              description: 'version folders that cannot be read or fail their checks, with the reason: never served',
            }),
          }),
          ...ERRORS,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      return { name, serving: name === served.name ? served.version() : null, ...(await known(name)) };
    },
  );

  app.post(
    '/admin/models/:name/versions',
    {
      config,
      bodyLimit: options.bodyLimit,
      schema: {
        summary: 'Register a version: its manifest and its ONNX file (base64); checked, then stored, not yet served',
        params: Name,
        body: Type.Object(
          { manifest: Type.Object({}, { additionalProperties: true }), model_base64: Type.String({ minLength: 1 }) },
          { additionalProperties: false },
        ),
        response: { 201: Version, ...ERRORS },
      },
    },
    async (request, reply) => {
      let manifest;
      try {
        manifest = parseManifest(JSON.stringify(request.body.manifest), 'manifest');
      } catch (error) {
        if (error instanceof ModelLoadError) throw new TributaryError('VALIDATION_FAILED', error.message);
        throw error;
      }
      if (manifest.name !== request.params.name) {
        throw new TributaryError('VALIDATION_FAILED', `the manifest names model ${manifest.name}, the path ${request.params.name}`);
      }
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(request.body.model_base64))
        throw new TributaryError('VALIDATION_FAILED', 'model_base64 is not base64');
      const summary = await registry.register(manifest, Buffer.from(request.body.model_base64, 'base64'));
      request.log.info(`model ${manifest.name} version ${manifest.version} registered by ${request.caller}`);
      return reply.status(201).send(summary);
    },
  );

  app.post(
    '/admin/models/:name/promote',
    {
      config,
      schema: {
        summary: 'Make a registered version the champion (every replica follows within seconds)',
        params: Name,
        body: Type.Object({ version: VersionName, reason: Reason }, { additionalProperties: false }),
        response: { 200: Routing, ...ERRORS },
      },
    },
    async (request) => {
      await readFirst(request.params.name);
      const routing = await registry.promote(request.params.name, request.body.version, request.caller!, request.body.reason);
      await followIfServed(request.params.name);
      return routing;
    },
  );

  app.post(
    '/admin/models/:name/rollback',
    {
      config,
      schema: {
        summary: 'Return to the previous champion',
        params: Name,
        body: Type.Object({ reason: Reason }, { additionalProperties: false }),
        response: { 200: Routing, ...ERRORS },
      },
    },
    async (request) => {
      await readFirst(request.params.name);
      const routing = await registry.rollback(request.params.name, request.caller!, request.body.reason);
      await followIfServed(request.params.name);
      return routing;
    },
  );

  app.post(
    '/admin/models/:name/rollout',
    {
      config,
      schema: {
        summary:
          'Set the rollout policy (champion only, canary, A/B, bandit) and the shadow versions; every replica follows within seconds',
        params: Name,
        body: Type.Object(
          {
            policy: Policy,
            shadows: Type.Optional(
              Type.Array(VersionName, {
                maxItems: MAX_ROLLOUT_VERSIONS,
                description: 'the shadow versions; without it the current ones stay (but a version the policy routes to); [] for none',
              }),
            ),
            reason: Reason,
          },
          { additionalProperties: false },
        ),
        response: { 200: Routing, ...ERRORS },
      },
    },
    async (request) => {
      const { policy, shadows, reason } = request.body;
      await readFirst(request.params.name);
      const routing = await registry.rollout(request.params.name, policy, shadows, request.caller!, reason);
      await followIfServed(request.params.name);
      return routing;
    },
  );

  app.post(
    '/admin/models/:name/feedback',
    {
      config,
      schema: {
        summary: 'Reward feedback for a version (a bandit rollout learns from it): the sum of rewards in [0, 1] of `trials` predictions',
        params: Name,
        body: Type.Object(
          {
            version: VersionName,
            reward: Type.Number({ minimum: 0, description: 'sum of the rewards, each in [0, 1]' }),
            trials: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'predictions judged (default 1)' })),
          },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null(), ...ERRORS },
      },
    },
    async (request, reply) => {
      const { version, reward, trials = 1 } = request.body;
      if (reward > trials)
        throw new TributaryError('VALIDATION_FAILED', `reward ${reward} is above the number of trials ${trials}`, { field: 'reward' });
      if (!(await registry.has(request.params.name, version))) {
        throw new TributaryError('NOT_FOUND', `model ${request.params.name} has no version ${version} in the registry`);
      }
      await options.rewards.add(request.params.name, version, trials, reward);
      // This replica follows at once; the others at their next routing poll.
      await followIfServed(request.params.name);
      return reply.status(204).send(null);
    },
  );

  app.get(
    '/admin/models/:name/audit',
    {
      config,
      schema: {
        summary: 'Routing changes, newest first: who, when, why',
        params: Name,
        querystring: Type.Object(
          { limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$' })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            entries: Type.Array(
              Type.Object({
                at: Type.String(),
                by: Type.String(),
                action: Type.String(),
                reason: Type.String(),
                from: Type.Union([Type.String(), Type.Null()]),
                to: Type.String(),
                revision: Type.Integer(),
              }),
            ),
          }),
          ...ERRORS,
        },
      },
    },
    async (request) => {
      // Whether the model is known, without reading its versions' files.
      if (!(await registry.exists(request.params.name)))
        throw new TributaryError('NOT_FOUND', `no model ${request.params.name} in the registry`);
      return { entries: await registry.audit(request.params.name, Number(request.query.limit ?? 100)) };
    },
  );
};
