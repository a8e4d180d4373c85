export { buildApp, type InferenceDeps } from './app.js';
export { createInferenceApp, createRewardStore, createRoutingStore, startInference, type InferenceService } from './service.js';
export { loadModel, ModelLoadError, readModelVersion, type LoadedModel, type ModelManifest } from './model.js';
