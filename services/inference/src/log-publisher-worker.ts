/**
 * The prediction log's Kafka producer, in a worker thread: producing records with kafkajs
 * costs ~25 µs of CPU per record, which would otherwise be spent on the event loop that
 * answers requests. The records come encoded (the event loop encodes each as it is logged).
 */
import { workerData } from 'piscina';
import { KafkaEventLog, type KafkaEventLogOptions, type OutgoingRecord } from '@tributary/shared';

const eventLog = new KafkaEventLog(workerData as KafkaEventLogOptions);

export type PublishTask = { topic: string; records: OutgoingRecord[] } | { close: true };

export default async function publish(task: PublishTask): Promise<void> {
  if ('close' in task) await eventLog.close();
  else await eventLog.publish(task.topic, task.records.map(asBuffers));
}

/**
 * A Buffer crosses to this thread as a plain Uint8Array (a structured clone), which kafkajs
 * would encode as the text of its numbers, with a wrong length: viewed as a Buffer again here.
 */
function asBuffers(record: OutgoingRecord): OutgoingRecord {
  const { value } = record;
  if (typeof value === 'string' || Buffer.isBuffer(value)) return record;
  const bytes = value as Uint8Array;
  return { ...record, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}
