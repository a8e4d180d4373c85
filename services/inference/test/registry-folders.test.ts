import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelVersion } from '../src/model.js';
import { ModelRegistry } from '../src/registry/registry.js';
import { MemoryRoutingStore } from '../src/registry/routing.js';
import { logisticVersion, tempRegistry } from './models.js';

/** Writes a built version's files into the registry folder `folder` (bypassing `register`'s checks). */
function place(root: string, folder: string, manifest: object, bytes: Buffer | string): void {
  const dir = join(root, 'fraud_detector', folder);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), bytes);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

describe('model registry folders', () => {
  it('lists a folder whose manifest names another version as damaged, not as a second copy of that version', async () => {
    const root = tempRegistry();
    cpSync(join(root, 'fraud_detector', '1'), join(root, 'fraud_detector', '9'), { recursive: true });
    const registry = new ModelRegistry(root, new MemoryRoutingStore());
    const { versions, damaged } = await registry.inventory('fraud_detector');
    expect(versions.map((v) => v.version)).toEqual(['1']);
    expect(damaged).toEqual([{ version: '9', reason: 'the manifest names fraud_detector version 1, not fraud_detector version 9' }]);
  });

  it('starts the routing on the highest version that can serve, passing over a damaged copy and one whose model does not load', async () => {
    const root = tempRegistry();
    const two = logisticVersion('2', 0.01, -2);
    place(root, '2', two.manifest, two.bytes);
    // Version 3: a file whose hash its manifest states, but not an ONNX model.
    const garbage = Buffer.from('not an onnx model');
    const three = logisticVersion('3', 0.01, -2);
    const { createHash } = await import('node:crypto');
    place(root, '3', { ...three.manifest, sha256: createHash('sha256').update(garbage).digest('hex') }, garbage);
    // Version 4: a model that loads, but not the file its manifest's hash names (a damaged copy).
    const four = logisticVersion('4', 0.01, -2);
    place(root, '4', { ...four.manifest, sha256: three.manifest.sha256 }, four.bytes);
    const registry = new ModelRegistry(root, new MemoryRoutingStore());
    expect((await registry.versions('fraud_detector')).map((v) => v.version)).toEqual(['1', '2', '3']);
    const checked = new Map<string, ModelVersion>();
    const routing = await registry.ensureRouting('fraud_detector', 'test', checked);
    expect(routing.champion).toBe('2');
    // The version chosen is handed out as read and checked, for a replica to start without reading it again.
    expect([...checked].map(([version, read]) => [version, read.bytes.equals(two.bytes)])).toEqual([['2', true]]);
  });
});
