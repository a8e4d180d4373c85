import kafkajs from 'kafkajs';
import { readFileSync } from 'node:fs';
import { createTopic } from './test/support/topics.js';
const brokers = readFileSync('/tmp/probe/boot', 'utf8').trim().split(',');
process.env.KAFKA_MOCK_CONTROL = readFileSync('/tmp/probe/ctl', 'utf8').trim();
const kafka = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const producer = kafka.producer();
await producer.connect();
const value = 'x'.repeat(180);
for (const [topic, parts] of [['ret-4', 4], ['ret-32', 32]] as const) {
  await createTopic(brokers, topic, parts);
  const t = Date.now();
  for (let i = 0; i < 200_000; i += 5000) {
    await producer.send({ topic, messages: Array.from({ length: 5000 }, (_, j) => ({ key: `k${i + j}`, value })) });
  }
  const offs = await admin.fetchTopicOffsets(topic);
  const kept = offs.reduce((s, o) => s + Number(o.high) - Number(o.low), 0);
  const high = offs.reduce((s, o) => s + Number(o.high), 0);
  console.log(`${topic}: produced 200000 in ${Date.now() - t} ms; high sum ${high}; retained ${kept}; partitions with low>0: ${offs.filter((o) => o.low !== '0').length}`);
}
await producer.disconnect();
await admin.disconnect();
