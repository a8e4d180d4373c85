export { buildApp, type InferenceDeps } from './app.js';
export { createInferenceApp, createRewardStore, createRoutingStore, startInference, type InferenceService } from './service.js';
export { loadModel, ModelLoadError, readModelFiles, readModelVersion, type LoadedModel, type ModelManifest } from './model.js';
export { describeRollout, ModelRegistry, type VersionSummary } from './registry/registry.js';
export { MAX_ROLLOUT_VERSIONS, type RolloutPolicy } from './registry/rollout.js';
export { MemoryRoutingStore, RedisRoutingStore, type Routing, type RoutingStore } from './registry/routing.js';
