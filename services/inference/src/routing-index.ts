/**
 * The model routing without the model runtime: what other services (the monitor's canary rule
 * and bandit rewards) need, importable without loading onnxruntime.
 */
export { MemoryRewardStore, RedisRewardStore, type RewardStore } from './registry/rewards.js';
export { policyVersions, type Rewards, type RolloutPolicy, type Variant } from './registry/rollout.js';
export {
  describeRollout,
  endRollout,
  MemoryRoutingStore,
  RedisRoutingStore,
  type AuditEntry,
  type Routing,
  type RoutingStore,
  unanswered,
} from './registry/routing.js';
