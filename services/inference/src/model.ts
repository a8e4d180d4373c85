/**
 * A model version from the registry directory: `manifest.json` (name, version, features in
 * input order, sha256 of the ONNX file, training metadata) and the ONNX file, run by
 * onnxruntime-node. Loading checks the hash, the input and output names and a test run, so
 * a broken version never replaces a working one.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import Type, { type Static } from 'typebox';
import { recordValidator } from '@tributary/shared';

export const ModelManifestSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  format: Type.Literal('onnx'),
  file: Type.String({ minLength: 1 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  input: Type.String({ minLength: 1 }),
  output: Type.String({ minLength: 1 }),
  features: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  defaults: Type.Optional(Type.Record(Type.String(), Type.Number())),
  threshold: Type.Number({ minimum: 0, maximum: 1 }),
  created_at: Type.String(),
  training: Type.Record(Type.String(), Type.Unknown()),
});
export type ModelManifest = Static<typeof ModelManifestSchema>;

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

export interface LoadedModel {
  manifest: ModelManifest;
  /** Scores `rows` input vectors laid out one after another. */
  score(vectors: Float32Array, rows: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function loadModel(dir: string): Promise<LoadedModel> {
  let manifestText: string;
  try {
    manifestText = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch (error) {
    throw new ModelLoadError(`cannot read ${join(dir, 'manifest.json')}: ${(error as Error).message}`);
  }
  const decoded = recordValidator<ModelManifest>(ModelManifestSchema).decode(Buffer.from(manifestText));
  if (!decoded.ok) throw new ModelLoadError(`${join(dir, 'manifest.json')}: ${decoded.detail}`);
  const manifest = decoded.value;
  const bytes = await readFile(join(dir, manifest.file)).catch((error: Error) => {
    throw new ModelLoadError(`cannot read model file ${manifest.file}: ${error.message}`);
  });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.sha256) {
    throw new ModelLoadError(`${manifest.file}: sha256 ${sha256} does not match the manifest's ${manifest.sha256}`);
  }
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 }).catch((error: Error) => {
    throw new ModelLoadError(`onnxruntime cannot load ${manifest.file}: ${error.message}`);
  });
  if (!session.inputNames.includes(manifest.input) || !session.outputNames.includes(manifest.output)) {
    throw new ModelLoadError(
      `model inputs [${session.inputNames.join(', ')}] / outputs [${session.outputNames.join(', ')}] do not include ${manifest.input} / ${manifest.output}`,
    );
  }
  const width = manifest.features.length;
  const score = async (vectors: Float32Array, rows: number): Promise<Float32Array> => {
    const feeds = { [manifest.input]: new ort.Tensor('float32', vectors, [rows, width]) };
    const result = await session.run(feeds);
    return result[manifest.output]!.data as Float32Array;
  };
  const probe = await score(new Float32Array(width), 1).catch((error: Error) => {
    throw new ModelLoadError(`test run failed: ${error.message}`);
  });
  if (probe.length !== 1 || !Number.isFinite(probe[0])) throw new ModelLoadError('test run did not return one finite score');
  return { manifest, score, close: () => session.release() };
}
