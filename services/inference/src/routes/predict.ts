import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyContextConfig } from 'fastify';
import type { TSchema } from 'typebox';
import { REQUEST_ID_MAX_LENGTH, tracingEnabled, Type, WELL_FORMED, WELL_FORMED_TEXT } from '@tributary/shared';
import { ErrorResponse } from '../errors.js';
import type { PredictRequest, Predictor } from '../predictor.js';
import { describePrediction, requestTracing } from '../request-tracing.js';

export interface PredictRouteOptions {
  predictor: Pick<Predictor, 'predict' | 'predictBatch'>;
  /** Entity types a request may name; the serving model's feature groups say which it must. */
  entities: string[];
  requestFields: TSchema;
  maxBatchRows: number;
  config?: FastifyContextConfig;
}

const EntityId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' });

const Explanation = Type.Object({
  name: Type.String(),
  value: Type.Number(),
  source: Type.Union([Type.Literal('store'), Type.Literal('request'), Type.Literal('on_demand'), Type.Literal('default')]),
  age_ms: Type.Union([Type.Number(), Type.Null()]),
});

export const PredictResponse = Type.Object({
  prediction_id: Type.String(),
  request_id: Type.String(),
  score: Type.Number(),
  model: Type.Object({ name: Type.String(), version: Type.String() }),
  variant: Type.Union([Type.Literal('champion'), Type.Literal('canary'), Type.Literal('ab'), Type.Literal('bandit')], {
    description: "how the model's routing chose the version: the champion, a canary, an A/B arm or a bandit draw",
  }),
  degraded: Type.Boolean({ description: 'true when the online store could not be read and defaults were used' }),
  defaulted: Type.Array(Type.String(), { description: 'features imputed with their default' }),
  explanation: Type.Optional(Type.Array(Explanation)),
});

const Explain = Type.Object(
  {
    explain: Type.Optional(
      Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
        description: 'return the feature vector used, with each value, its source and age',
      }),
    ),
  },
  { additionalProperties: false },
);

const ERRORS = {
  400: ErrorResponse,
  401: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  422: ErrorResponse,
  429: ErrorResponse,
  500: ErrorResponse,
  503: ErrorResponse,
};

export const predictRoute: FastifyPluginAsyncTypebox<PredictRouteOptions> = async (app, options) => {
  const Row = Type.Object(
    {
      // Well-formed: the monitor joins labels to it in Redis, where a lone surrogate would make two ids one.
      request_id: Type.String({ minLength: 1, maxLength: REQUEST_ID_MAX_LENGTH, pattern: WELL_FORMED, description: WELL_FORMED_TEXT }),
      entities: Type.Object(Object.fromEntries(options.entities.map((e) => [e, Type.Optional(EntityId)])), {
        additionalProperties: false,
        description: 'ids of the entities whose features the model needs',
      }),
      features: options.requestFields,
    },
    { additionalProperties: false },
  );
  const traced = tracingEnabled();
  const explainOf = (query: unknown) => ['true', '1'].includes((query as { explain?: string }).explain ?? '');
  app.post(
    '/v1/predict',
    {
      ...requestTracing('/v1/predict'),
      config: options.config ?? {},
      schema: {
        summary: 'Score one request with the serving model',
        body: Row,
        querystring: Explain,
        response: { 200: PredictResponse, ...ERRORS },
      },
    },
    async (request) => {
      const response = await options.predictor.predict(request.body as PredictRequest, explainOf(request.query));
      if (traced) describePrediction(request, [response]);
      return response;
    },
  );
  app.post(
    '/v1/predict/batch',
    {
      ...requestTracing('/v1/predict/batch'),
      config: options.config ?? {},
      schema: {
        summary: `Score up to ${options.maxBatchRows} requests at once (one feature fetch, one model run)`,
        body: Type.Object({ rows: Type.Array(Row, { minItems: 1, maxItems: options.maxBatchRows }) }, { additionalProperties: false }),
        querystring: Explain,
        response: { 200: Type.Object({ predictions: Type.Array(PredictResponse) }), ...ERRORS },
      },
    },
    async (request) => {
      const predictions = await options.predictor.predictBatch((request.body as { rows: PredictRequest[] }).rows, explainOf(request.query));
      if (traced) describePrediction(request, predictions);
      return { predictions };
    },
  );
};
