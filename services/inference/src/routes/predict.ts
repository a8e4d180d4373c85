import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type TSchema } from 'typebox';
import { ErrorResponse } from '../errors.js';
import type { createPredictor } from '../predictor.js';

export interface PredictRouteOptions {
  predict: ReturnType<typeof createPredictor>;
  entities: string[];
  requestFields: TSchema;
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
  degraded: Type.Boolean({ description: 'true when the online store could not be read and defaults were used' }),
  defaulted: Type.Array(Type.String(), { description: 'features imputed with their default' }),
  explanation: Type.Optional(Type.Array(Explanation)),
});

export const predictRoute: FastifyPluginAsyncTypebox<PredictRouteOptions> = async (app, options) => {
  const Body = Type.Object(
    {
      request_id: Type.String({ minLength: 1, maxLength: 256 }),
      entities: Type.Object(Object.fromEntries(options.entities.map((e) => [e, EntityId])), { additionalProperties: false }),
      features: options.requestFields,
    },
    { additionalProperties: false },
  );
  app.post(
    '/v1/predict',
    {
      schema: {
        summary: 'Score one request with the serving model',
        body: Body,
        querystring: Type.Object(
          { explain: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')])) },
          { additionalProperties: false },
        ),
        response: { 200: PredictResponse, 400: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse, 503: ErrorResponse },
      },
    },
    async (request) => {
      const body = request.body as { request_id: string; entities: Record<string, string>; features: Record<string, unknown> };
      const flag = (request.query as { explain?: string }).explain;
      const explain = flag === 'true' || flag === '1';
      return options.predict(body, explain);
    },
  );
};
