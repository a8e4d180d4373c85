/**
 * The prediction log's Kafka producer, in a worker thread: encoding records as JSON and
 * producing them with kafkajs costs ~30 µs of CPU per record, which would otherwise be
 * spent on the event loop that answers requests.
 */
import { workerData } from 'piscina';
import { KafkaEventLog, type KafkaEventLogOptions, type PredictionLogRecord } from '@tributary/shared';
import { encodePredictions } from './prediction-log.js';

const eventLog = new KafkaEventLog(workerData as KafkaEventLogOptions);

export type PublishTask = { topic: string; records: PredictionLogRecord[] } | { close: true };

export default async function publish(task: PublishTask): Promise<void> {
  if ('close' in task) await eventLog.close();
  else await eventLog.publish(task.topic, encodePredictions(task.records));
}
