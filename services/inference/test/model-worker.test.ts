/**
 * A model version's worker thread that dies, or whose run outlasts MODEL_RUN_TIMEOUT_MS, fails
 * that batch's requests with a retriable 503 MODEL_UNAVAILABLE naming the version; the next
 * request is scored (by a new thread in place of the dead one, by a spare while the overdue run
 * ends on its own) and the process lives on.
 */
import { Piscina } from 'piscina';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fraud, TributaryError } from '@tributary/shared';
import { DEFAULT_SCORING, startModel, type LoadedModel, type ScoringOptions } from '../src/model.js';
import { buildTestApp, validRequest } from './build.js';
import { logisticVersion, slowVersion, type BuiltVersion } from './models.js';

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

/** The version (by default `built`) in one worker thread (never on the event loop), its failed runs recorded. */
async function inWorker(options: Partial<ScoringOptions> = {}, version: BuiltVersion = built) {
  const failures: string[] = [];
  model = await startModel(
    { dir: '', manifest: version.manifest, bytes: version.bytes },
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

  it('whose run outlasts the deadline fails the batch with 503 MODEL_UNAVAILABLE; the run ends on its thread, a spare thread scores the next request', async () => {
    // A batch of 1,024 rows of the slow model runs for seconds inside onnxruntime (at least 0.3 s
    // on a fast machine); its deadline passes mid-run. Terminating the thread there would abort
    // this very process.
    const slow = slowVersion('3', 64);
    const { model: slowModel, failures } = await inWorker({ maxBatchRows: 1024, runTimeoutMs: 100 }, slow);
    const seen = onNextRun({});
    const rows = 1024;
    const failed = slowModel.score(new Float32Array(rows * width).fill(1), rows);
    await expect(failed).rejects.toMatchObject({
      code: 'MODEL_UNAVAILABLE',
      retriable: true,
      message: 'model fraud_detector version 3 did not score a batch of 1024 rows within 100 ms; retry shortly',
    });
    expect(failures).toEqual(['3 timeout']);
    // Retried as a client does on a 503: the first tries may outlast the deadline too, while the
    // spare thread starts and loads the model.
    let scores: Float32Array | undefined;
    for (let attempt = 0; scores === undefined && attempt < 50; attempt++) {
      scores = await slowModel.score(oneRow(), 1).catch(() => undefined);
    }
    expect(scores![0]).toBeCloseTo(slow.expected(oneRow()), 5);
    expect(new Set(failures)).toEqual(new Set(['3 timeout']));
    const threads = seen.pool!.threads.map((thread) => thread.threadId);
    // The overdue run's thread is still there, and another scored the row meanwhile.
    expect(threads).toContain(seen.threadId);
    expect(threads).toHaveLength(2);
    // Closing waits for the overdue run to end on its own.
    await slowModel.close();
    model = undefined;
  });

  it('under a steady load starts no spare thread', async () => {
    const { model } = await inWorker({ maxBatchRows: 4 });
    const seen = onNextRun({});
    for (let wave = 0; wave < 20; wave++) {
      const scored = await Promise.all(Array.from({ length: 16 }, () => model.score(oneRow(), 1)));
      for (const scores of scored) expect(scores[0]).toBeCloseTo(built.expected(oneRow()), 5);
    }
    expect(seen.pool!.threads.map((thread) => thread.threadId)).toEqual([seen.threadId]);
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
