export { startFeaturePipeline, type FeaturePipeline, type FeaturePipelineOptions } from './pipeline.js';
export { createBatchProcessor, type BatchOutcome } from './batch-processor.js';
export { sourceDecoder, type SourceEvent } from './decode.js';
