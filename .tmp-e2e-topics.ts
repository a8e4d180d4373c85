import kafkajs from 'kafkajs';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createTopic, setBrokerDown, mockControl } from './test/support/topics.js';

const brokers = readFileSync('/tmp/probe/boot', 'utf8').trim().split(',');
process.env.KAFKA_MOCK_CONTROL = readFileSync('/tmp/probe/ctl', 'utf8').trim();
const kafka = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();

let t = Date.now();
await createTopic(brokers, 'e2e-32', 32);
console.log(`createTopic e2e-32 32: ok in ${Date.now() - t} ms`);
const kc = execFileSync('kcat', ['-b', brokers.join(','), '-L', '-t', 'e2e-32'], { encoding: 'utf8' });
console.log('kcat:', kc.split('\n').find((l) => l.includes('topic "e2e-32"')));
console.log('fetchTopicOffsets partitions:', (await admin.fetchTopicOffsets('e2e-32')).length);

// idempotent with the same count
t = Date.now();
await createTopic(brokers, 'e2e-32', 32);
console.log(`createTopic again (same count): ok in ${Date.now() - t} ms`);
// different count on existing
t = Date.now();
await createTopic(brokers, 'e2e-32', 16).then(
  () => console.log('UNEXPECTED success'),
  (e: Error) => console.log(`createTopic e2e-32 16 -> threw in ${Date.now() - t} ms: ${e.message}`),
);
// auto-created topic (4 partitions) then createTopic 32
const producer = kafka.producer();
await producer.connect();
await producer.send({ topic: 'e2e-auto', messages: [{ value: 'x' }] });
t = Date.now();
await createTopic(brokers, 'e2e-auto', 32).then(
  () => console.log('UNEXPECTED success'),
  (e: Error) => console.log(`createTopic e2e-auto 32 -> threw in ${Date.now() - t} ms: ${e.message}`),
);
// without the control env
const saved = process.env.KAFKA_MOCK_CONTROL;
delete process.env.KAFKA_MOCK_CONTROL;
await createTopic(brokers, 'e2e-noenv', 8).then(
  () => console.log('UNEXPECTED success'),
  (e: Error) => console.log(`no env -> ${e.message}`),
);
await setBrokerDown(1, true).then(
  () => console.log('UNEXPECTED success'),
  (e: Error) => console.log(`setBrokerDown no env -> ${e.message}`),
);
process.env.KAFKA_MOCK_CONTROL = saved;
console.log('e2e-noenv exists?', (await admin.listTopics()).includes('e2e-noenv'));
await setBrokerDown(9, true).then(
  () => console.log('UNEXPECTED success'),
  (e: Error) => console.log(`setBrokerDown 9 -> ${e.message}`),
);
console.log('bad input ->', await mockControl('create e2e-x -3'));

// produce + consume on the 32-partition topic
const N = 320;
await producer.send({ topic: 'e2e-32', messages: Array.from({ length: N }, (_, i) => ({ key: `k${i}`, value: `v${i}` })) });
const offsets = await admin.fetchTopicOffsets('e2e-32');
const total = offsets.reduce((s, o) => s + Number(o.high) - Number(o.low), 0);
console.log(`produced ${N}; offsets sum ${total}; non-empty partitions ${offsets.filter((o) => o.high !== '0').length}/32`);
const consumer = kafka.consumer({ groupId: `e2e-${Date.now()}`, sessionTimeout: 6000, maxWaitTimeInMs: 100 });
await consumer.connect();
await consumer.subscribe({ topic: 'e2e-32', fromBeginning: true });
const seen = new Set<string>();
const partsSeen = new Set<number>();
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`consumed only ${seen.size}`)), 30_000);
  void consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) seen.add(m.value!.toString());
      partsSeen.add(batch.partition);
      if (seen.size >= N) {
        clearTimeout(timer);
        resolve();
      }
    },
  });
});
console.log(`consumed ${seen.size} distinct values from ${partsSeen.size} partitions`);
await consumer.disconnect();

// broker down / up (3 brokers)
const meta = await admin.fetchTopicMetadata({ topics: ['e2e-32'] });
const down = 2;
const led = meta.topics[0]!.partitions.filter((p) => p.leader === down).map((p) => p.partitionId);
console.log(`broker ${down} leads partitions ${led.join(',')}`);
const port2 = brokers[down - 1]!;
await setBrokerDown(down, true);
let kcatDown = 'ok';
try {
  execFileSync('kcat', ['-b', port2, '-L', '-m', '2'], { encoding: 'utf8', stdio: 'pipe' });
} catch (e) {
  kcatDown = `failed (${String((e as { stderr?: string }).stderr).split('\n').find((l) => l.includes('Connect'))?.slice(0, 120)})`;
}
console.log(`after broker-down ${down}: kcat -L against it: ${kcatDown}`);
if (led.length > 0) {
  const p2 = kafka.producer({ retry: { retries: 1, initialRetryTime: 100 } });
  await p2.connect();
  t = Date.now();
  await p2
    .send({ topic: 'e2e-32', acks: -1, timeout: 2000, messages: [{ partition: led[0]!, value: 'while-down' }] })
    .then(
      () => console.log('produce to a partition led by the down broker: succeeded (unexpected)'),
      (e: Error) => console.log(`produce to partition ${led[0]} led by the down broker: failed in ${Date.now() - t} ms: ${e.name}: ${e.message}`),
    );
  await p2.disconnect().catch(() => undefined);
}
await setBrokerDown(down, false);
const kcatUp = execFileSync('kcat', ['-b', port2, '-L', '-m', '5', '-t', 'e2e-32'], { encoding: 'utf8' });
console.log(`after broker-up ${down}:`, kcatUp.split('\n')[0]);
if (led.length > 0) {
  const p3 = kafka.producer();
  await p3.connect();
  const r = await p3.send({ topic: 'e2e-32', messages: [{ partition: led[0]!, value: 'after-up' }] });
  console.log('produce after broker-up:', JSON.stringify(r));
  await p3.disconnect();
}
await producer.disconnect();
await admin.disconnect();
console.log('done');
