/**
 * Preloaded (`node --import`) into pipeline processes that share one consumer group on
 * librdkafka's mock cluster. There, a member joining a group whose leader sends its
 * SyncGroup first crashes with INVALID_REQUEST (a mock-cluster race, see
 * /work/shared/docs/ENVIRONMENT.md; real Kafka does not need this): delaying the leader's
 * assignment by 300 ms lets the other members sync first. Test-only: it wraps kafkajs'
 * round-robin assigner for every consumer the process creates.
 */
import kafkajs, { type PartitionAssigner } from 'kafkajs';

const { Kafka, PartitionAssigners } = kafkajs;
const ASSIGNMENT_DELAY_MS = 300;

const delayedRoundRobin: PartitionAssigner = (config) => {
  const assigner = PartitionAssigners.roundRobin(config);
  return {
    ...assigner,
    assign: async (group) => {
      await new Promise((resolve) => setTimeout(resolve, ASSIGNMENT_DELAY_MS));
      return assigner.assign(group);
    },
  };
};

const consumer = Kafka.prototype.consumer;
Kafka.prototype.consumer = function (this: InstanceType<typeof Kafka>, config) {
  return consumer.call(this, { ...config!, partitionAssigners: [delayedRoundRobin] });
};
