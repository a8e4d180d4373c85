/**
 * A model file (maybe a large ONNX file) is hashed once on its way to serving: a version
 * registered, and the champion a replica chooses and starts at its first start.
 */
import type * as Crypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, fraud } from '@tributary/shared';
import { DEFAULT_SCORING, readModelFiles } from '../src/model.js';
import { ModelRegistry } from '../src/registry/registry.js';
import { MemoryRoutingStore } from '../src/registry/routing.js';
import { ModelServing } from '../src/registry/serving.js';
import { logisticVersion, tempRegistry, versionFolder } from './models.js';

// Every sha256 hash started, by any module: counted by wrapping node's createHash.
const hashes = vi.hoisted(() => ({ sha256: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof Crypto>();
  return {
    ...crypto,
    createHash: (...args: Parameters<typeof crypto.createHash>) => {
      if (args[0] === 'sha256') hashes.sha256++;
      return crypto.createHash(...args);
    },
  };
});

const serving: ModelServing[] = [];
afterEach(async () => {
  await Promise.all(serving.splice(0).map((s) => s.close()));
});

describe('hashing a model file', () => {
  it('once when a version is read from its folder and registered (as `npm run models -- register` does)', async () => {
    const registry = new ModelRegistry(tempRegistry(), new MemoryRoutingStore());
    const folder = versionFolder(logisticVersion('2', 0.01, -2));
    hashes.sha256 = 0;
    const read = await readModelFiles(folder);
    await registry.register(read.manifest, read.bytes);
    expect(hashes.sha256).toBe(1);
  });

  it("once at a replica's first start, for the champion it chooses and starts", async () => {
    const registry = new ModelRegistry(tempRegistry(), new MemoryRoutingStore());
    hashes.sha256 = 0;
    const started = await ModelServing.start({
      registry,
      name: 'fraud_detector',
      catalog: fraud.fraudExample().catalog,
      scoring: { ...DEFAULT_SCORING, threads: 1 },
      pollMs: 60_000,
      logger: createLogger('test', 'silent'),
      stats: { serving: () => {}, reloaded: () => {}, refusing: () => {} },
    });
    serving.push(started);
    expect(started.current.model.manifest.version).toBe('1');
    expect(hashes.sha256).toBe(1);
  });
});
