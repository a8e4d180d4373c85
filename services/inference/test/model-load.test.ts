/**
 * onnxruntime creates a session synchronously on the thread that asks (a 16 MB model held the
 * event loop 80–200 ms): a version over 1 MB is checked in a worker thread and never opened on
 * the event loop; a small one is checked there (a few milliseconds) and kept only when its runs
 * are cheap enough to score inline (MODEL_INLINE_MAX_US).
 */
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fraud } from '@tributary/shared';
import { DEFAULT_SCORING, startModel, type LoadedModel } from '../src/model.js';
import { ModelRegistry } from '../src/registry/registry.js';
import { MemoryRoutingStore } from '../src/registry/routing.js';
import { largeVersion, logisticVersion, tempRegistry } from './models.js';

const width = fraud.FRAUD_MODEL_FEATURES.length;
const row = () => Float32Array.from({ length: width }, (_, i) => i / 10);
const loaded: LoadedModel[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(loaded.splice(0).map((model) => model.close()));
});

/** Counts the sessions created on this thread (a worker thread has its own onnxruntime module). */
const sessionsOnEventLoop = () => vi.spyOn(ort.InferenceSession, 'create');

describe('loading a model version', () => {
  it('too large to score on the event loop: checked and loaded in worker threads only, and served', async () => {
    const built = largeVersion('2', 2, 0.01);
    expect(built.bytes.length).toBeGreaterThan(2 * 1024 * 1024);
    const created = sessionsOnEventLoop();
    // Even with a limit no run exceeds, such a model is never tried on the event loop.
    const model = await startModel(
      { dir: '', manifest: built.manifest, bytes: built.bytes },
      { ...DEFAULT_SCORING, threads: 1, inlineMaxMicros: 100_000 },
    );
    loaded.push(model);
    expect(created).not.toHaveBeenCalled();
    expect(model).toMatchObject({ inlineMaxRows: 0, workerThreads: 1 });
    expect((await model.score(row(), 1))[0]).toBeCloseTo(built.expected(row()), 4);
  });

  it('small: checked on the event loop, its session kept only when its runs are cheap enough (MODEL_INLINE_MAX_US)', async () => {
    const built = logisticVersion('2', 0.1, 0);
    const version = { dir: '', manifest: built.manifest, bytes: built.bytes };
    const created = sessionsOnEventLoop();
    // The sessions' class (the factory's type does not name it).
    const release = vi.spyOn((ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype, 'release');
    // 1 µs: a run and the event-loop turn its timing includes cost more; the checked session is let go.
    const slow = await startModel(version, { ...DEFAULT_SCORING, threads: 1, inlineMaxMicros: 1 });
    loaded.push(slow);
    expect(created).toHaveBeenCalledTimes(1);
    expect(release).toHaveBeenCalledTimes(1);
    expect(slow).toMatchObject({ inlineMaxRows: 0, workerThreads: 1 });
    expect((await slow.score(row(), 1))[0]).toBeCloseTo(built.expected(row()), 5);
    // The same model under a limit of 100 ms scores every batch on the event loop, in the session checked there.
    const fast = await startModel(version, { ...DEFAULT_SCORING, threads: 1, inlineMaxMicros: 100_000 });
    loaded.push(fast);
    expect(created).toHaveBeenCalledTimes(2);
    expect(release).toHaveBeenCalledTimes(1);
    expect(fast).toMatchObject({ inlineMaxRows: DEFAULT_SCORING.maxBatchRows, workerThreads: 0 });
    expect((await fast.score(row(), 1))[0]).toBeCloseTo(built.expected(row()), 5);
  });

  it('registering and promoting check a large version in a worker thread, refusing one that cannot serve with its reason', async () => {
    const registry = new ModelRegistry(tempRegistry(), new MemoryRoutingStore());
    expect((await registry.ensureRouting('fraud_detector', 'test')).champion).toBe('1');
    const created = sessionsOnEventLoop();
    const v2 = largeVersion('2', 2, 0.01);
    await registry.register(v2.manifest, v2.bytes);
    expect((await registry.promote('fraud_detector', '2', 'test', 'a check off the event loop')).champion).toBe('2');
    // One feature fewer in the manifest than the model's input takes.
    const bad = largeVersion('3', 2, 0.01);
    const width = bad.manifest.features.length;
    await expect(registry.register({ ...bad.manifest, features: bad.manifest.features.slice(1) }, bad.bytes)).rejects.toMatchObject({
      code: 'MODEL_REJECTED',
      message: expect.stringContaining(`the manifest lists ${width - 1} features, so [rows, ${width - 1}] is expected`) as unknown,
    });
    expect(created).not.toHaveBeenCalled();
  });
});
