export { startFeaturePipeline, type FeaturePipeline, type FeaturePipelineOptions } from './pipeline.js';
export {
  createFeatureProcessor,
  decodeCheckpoint,
  encodeCheckpoint,
  type FeatureProcessor,
  PartitionLost,
  type BatchOutcome,
  type FlushOutcome,
  type CacheStats,
} from './feature-processor.js';
export { sourceDecoder, type DecodeResult, type SourceEvent } from './decode.js';
export { startLabelJoin, type LabelJoinOptions } from './label-join.js';
export {
  backfill,
  eventReplay,
  streamedReplay,
  unusableEvents,
  type EventReplay,
  type FeatureQuery,
  type FeatureRow,
  type StreamedReplay,
} from './backfill.js';
export { startFeatureService, type FeatureService } from './service.js';
