/**
 * A model version's worker thread that dies, or whose run outlasts MODEL_RUN_TIMEOUT_MS, fails
 * that batch's requests with a retriable 503 MODEL_UNAVAILABLE naming the version; the pool
 * starts another worker and the next request is scored.
 */
import { Piscina } from 'piscina';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fraud, TributaryError } from '@tributary/shared';
import { DEFAULT_SCORING, startModel, type LoadedModel, type ScoringOptions } from '../src/model.js';
import { buildTestApp, validRequest } from './build.js';
import { logisticVersion } from './models.js';

const width = fraud.FRAUD_MODEL_FEATURES.length;
const built = logisticVersion('2', 0.1, 0);
let model: LoadedModel | undefined;
let app: Awaited<ReturnType<typeof buildTestApp>>['app'] | undefined;

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await model?.close();
  await app?.close();
  model = app = undefined;
});

/** The version in one worker thread (never on the event loop), its failed runs recorded. */
async function inWorker(options: Partial<ScoringOptions> = {}) {
  const failures: string[] = [];
  model = await startModel(
    { dir: '', manifest: built.manifest, bytes: built.bytes },
    {
      ...DEFAULT_SCORING,
      threads: 1,
      inlineMaxMicros: 0,
      ...options,
      onRunFailure: (manifest, reason) => failures.push(`${manifest.version} ${reason}`),
    },
  );
  return { model, failures };
}

/**
 * Calls `before` with the pool as its next run is handed to its worker thread, and `after`
 * once it is; records the pool and that thread.
 */
function onNextRun(hooks: { before?(pool: Piscina): void; after?(pool: Piscina): void }): { pool?: Piscina; threadId?: number } {
  const seen: { pool?: Piscina; threadId?: number } = {};
  const run = Piscina.prototype.run;
  vi.spyOn(Piscina.prototype, 'run').mockImplementationOnce(function (this: Piscina, ...args: Parameters<Piscina['run']>) {
    seen.pool = this;
    seen.threadId = this.threads[0]!.threadId;
    hooks.before?.(this);
    const running = run.apply(this, args);
    hooks.after?.(this);
    return running;
  });
  return seen;
}

const oneRow = () => new Float32Array(width).fill(1);

describe('a model worker thread', () => {
  it('that dies fails the batch with 503 MODEL_UNAVAILABLE naming the version; the next request is scored', async () => {
    const { model, failures } = await inWorker();
    // The thread is stopped as the run is handed to it: it exits without answering.
    const seen = onNextRun({ before: (pool) => void pool.threads[0]!.terminate() });
    const failed = model.score(oneRow(), 1);
    await expect(failed).rejects.toBeInstanceOf(TributaryError);
    await expect(failed).rejects.toMatchObject({ code: 'MODEL_UNAVAILABLE', httpStatus: 503, retriable: true });
    await expect(failed).rejects.toThrow(/^model fraud_detector version 2 failed to score \(worker exited with code: 1\); retry shortly$/);
    expect(failures).toEqual(['2 crash']);
    const scores = await model.score(oneRow(), 1);
    expect(scores[0]).toBeCloseTo(built.expected(oneRow()), 5);
    expect(seen.pool!.threads.map((thread) => thread.threadId)).not.toContain(seen.threadId);
  });

  it('whose run outlasts the deadline is replaced, the batch failed with 503 MODEL_UNAVAILABLE; the next request is scored', async () => {
    const { model, failures } = await inWorker({ runTimeoutMs: 5000 });
    // The deadline passes as soon as the run is handed over: as if the session hung.
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const seen = onNextRun({ after: () => vi.advanceTimersByTime(5000) });
    const failed = model.score(oneRow(), 1);
    await expect(failed).rejects.toMatchObject({
      code: 'MODEL_UNAVAILABLE',
      retriable: true,
      message: 'model fraud_detector version 2 did not score a batch of 1 rows within 5000 ms; the run was stopped, retry shortly',
    });
    expect(failures).toEqual(['2 timeout']);
    vi.useRealTimers();
    const scores = await model.score(oneRow(), 1);
    expect(scores[0]).toBeCloseTo(built.expected(oneRow()), 5);
    expect(seen.pool!.threads.map((thread) => thread.threadId)).not.toContain(seen.threadId);
  });

  it('that dies is answered 503 MODEL_UNAVAILABLE with Retry-After, and counted; the next prediction is served', async () => {
    const built = await buildTestApp({ env: { MODEL_INLINE_MAX_US: '0' } });
    app = built.app;
    onNextRun({ before: (pool) => void pool.threads[0]!.terminate() });
    const failed = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(failed.statusCode).toBe(503);
    expect(failed.headers['retry-after']).toBe('1');
    expect(failed.json()).toMatchObject({ code: 'MODEL_UNAVAILABLE' });
    expect(failed.json().message).toMatch(/^model fraud_detector version 1 failed to score/);
    const text = await built.registry.metrics();
    expect(text).toContain('tributary_model_run_failures_total{model="fraud_detector",version="1",reason="crash"} 1');
    expect(text).toContain('tributary_http_server_errors_total{code="MODEL_UNAVAILABLE"} 1');
    const served = await app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    expect(served.statusCode).toBe(200);
    expect(served.json().model).toEqual({ name: 'fraud_detector', version: '1' });
  });
});
