/**
 * The ceiling of the prediction benchmark: the inference service's own Fastify settings and
 * `POST /v1/predict` route (same body schema, validation and response serialisation) with
 * a predictor that answers a constant. Usage: tsx bench/predict/ceiling.ts <port>
 */
import { createLogger, fraud } from '../../shared/src/index.js';
import { createFastify } from '../../services/inference/src/app.js';
import { predictRoute } from '../../services/inference/src/routes/predict.js';

const port = Number(process.argv[2] ?? 3901);
const app = createFastify({ logger: createLogger('ceiling', 'warn'), bodyLimit: 1_048_576 });
const constant = {
  prediction_id: '00000000-0000-4000-8000-000000000000',
  score: 0.5,
  model: { name: 'fraud_detector', version: '1' },
  variant: 'champion' as const,
  degraded: false,
  defaulted: [],
};
await app.register(predictRoute, {
  predictor: {
    predict: async (request) => ({ ...constant, request_id: request.request_id }),
    predictBatch: async (rows) => rows.map((request) => ({ ...constant, request_id: request.request_id })),
  },
  entities: ['user_id', 'merchant_id'],
  maxBatchRows: 256,
  requestFields: fraud.FraudRequestFieldsSchema,
});
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ host: '127.0.0.1', port });
console.log(`ceiling listening on ${port}`);
// A clean exit on SIGINT, so that `--cpu-prof` writes its profile.
process.once('SIGINT', () => void app.close().then(() => process.exit(0)));
