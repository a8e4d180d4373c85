/**
 * The prediction log's Kafka producer, in a worker thread: encoding and sending records
 * with kafkajs costs ~25 us of CPU per record, which would otherwise be spent on the event
 * loop that answers requests.
 */
import { workerData } from 'piscina';
import { KafkaEventLog, type KafkaEventLogOptions, type OutgoingRecord } from '@tributary/shared';

const eventLog = new KafkaEventLog(workerData as KafkaEventLogOptions);

export type PublishTask = { topic: string; records: OutgoingRecord[] } | { close: true };

export default async function publish(task: PublishTask): Promise<void> {
  if ('close' in task) await eventLog.close();
  else await eventLog.publish(task.topic, task.records);
}
