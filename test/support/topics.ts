/**
 * Topic creation and broker fault injection for integration tests.
 *
 * On a real Kafka cluster (e.g. testcontainers), topics are created through the admin API. librdkafka's mock cluster (CI and
 * `deploy/local/kafka-mock.py`) names no controller, so `admin.createTopics` fails there; the mock's control channel, whose address
 * `.ci/run` exports as KAFKA_MOCK_CONTROL (`127.0.0.1:PORT`), creates the topic instead. Either way the topic's partition count is
 * then checked through the Kafka protocol.
 */
import net from 'node:net';
import kafkajs from 'kafkajs';
import type { Admin } from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

/** How long createTopic waits for the new topic to show all its partitions with leaders. */
const VERIFY_TIMEOUT_MS = 15_000;
/** How long one control-channel command may take (connect, send, reply). */
const CONTROL_TIMEOUT_MS = 10_000;

/**
 * Creates `topic` with `partitions` partitions and waits until the cluster reports exactly that many, each with a leader.
 *
 * Tries the Kafka admin API first; when that fails and KAFKA_MOCK_CONTROL is set, asks the mock cluster's control channel. A topic
 * that already exists with the same partition count is accepted; with another partition count, or when neither way creates it, this
 * throws.
 */
export async function createTopic(brokers: string[], topic: string, partitions: number): Promise<void> {
  if (brokers.length === 0) throw new Error(`createTopic(${topic}): no Kafka brokers given`);
  if (!topic) throw new Error('createTopic: empty topic name');
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new Error(`createTopic(${topic}): partitions must be a positive integer, got ${partitions}`);
  }

  // kafkajs' admin client asks for metadata with allowAutoTopicCreation=false, so checking a missing topic does not create it with
  // the broker's default partition count (4 on the mock cluster).
  const kafka = new Kafka({
    clientId: 'tributary-test-topics',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    let adminError: unknown;
    try {
      // Resolves false (without throwing) when the topic exists already; the check below then decides.
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    } catch (error) {
      adminError = error;
    }

    if (adminError !== undefined) {
      const control = process.env.KAFKA_MOCK_CONTROL;
      if (!control) {
        throw new Error(
          `createTopic(${topic}, ${partitions}): admin.createTopics failed (${describe(adminError)}) and KAFKA_MOCK_CONTROL is not set ` +
            `(on librdkafka's mock cluster, start deploy/local/kafka-mock.py with --control-file and export its address)`,
          { cause: adminError },
        );
      }
      const reply = await mockControl(`create ${topic} ${partitions}`, control);
      // The mock refuses to re-create a topic; as with the admin API, an existing topic is fine if its partition count matches.
      if (reply !== 'ok' && !reply.startsWith('error TOPIC_ALREADY_EXISTS')) {
        throw new Error(
          `createTopic(${topic}, ${partitions}): admin.createTopics failed (${describe(adminError)}) and the mock control channel ` +
            `at ${control} replied: ${reply}`,
        );
      }
    }

    await verifyPartitions(admin, topic, partitions);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Takes a mock broker down (it refuses and drops connections, but keeps leading its partitions) or brings it back up. */
export async function setBrokerDown(id: number, down: boolean): Promise<void> {
  const control = process.env.KAFKA_MOCK_CONTROL;
  if (!control) {
    throw new Error(
      `setBrokerDown(${id}, ${down}): KAFKA_MOCK_CONTROL is not set; broker fault injection needs librdkafka's mock cluster ` +
        `(deploy/local/kafka-mock.py --control-file)`,
    );
  }
  if (!Number.isInteger(id)) throw new Error(`setBrokerDown: broker id must be an integer, got ${id}`);
  const command = `${down ? 'broker-down' : 'broker-up'} ${id}`;
  const reply = await mockControl(command, control);
  if (reply !== 'ok') throw new Error(`setBrokerDown: '${command}' failed on the mock control channel at ${control}: ${reply}`);
}

/**
 * Sends one command line to the mock cluster's control channel and returns its one-line reply (`ok...` or `error ...`).
 * Throws when the channel cannot be reached or does not answer in time.
 */
export async function mockControl(command: string, address = process.env.KAFKA_MOCK_CONTROL): Promise<string> {
  if (!address) throw new Error(`mock control '${command}': KAFKA_MOCK_CONTROL is not set`);
  if (/[\r\n]/.test(command)) throw new Error(`mock control: a command is one line, got ${JSON.stringify(command)}`);
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65_535) {
    throw new Error(`mock control: KAFKA_MOCK_CONTROL must be HOST:PORT, got ${JSON.stringify(address)}`);
  }

  return new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buffered = '';
    let settled = false;
    const finish = (error: Error | undefined, reply?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply ?? '');
    };
    const timer = setTimeout(
      () => finish(new Error(`mock control at ${address}: no reply to '${command}' within ${CONTROL_TIMEOUT_MS} ms`)),
      CONTROL_TIMEOUT_MS,
    );
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline >= 0) finish(undefined, buffered.slice(0, newline).replace(/\r$/, ''));
    });
    socket.on('error', (error) => finish(new Error(`mock control at ${address}: '${command}' failed: ${error.message}`, { cause: error })));
    socket.on('close', () => finish(new Error(`mock control at ${address}: connection closed before a reply to '${command}'`)));
  });
}

/** Waits until metadata and offsets both show `partitions` partitions of `topic`, each with a leader. */
async function verifyPartitions(admin: Admin, topic: string, partitions: number): Promise<void> {
  const deadline = Date.now() + VERIFY_TIMEOUT_MS;
  let last = 'no answer yet';
  let mismatches = 0;
  for (;;) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const found = metadata.topics.find((t) => t.name === topic)?.partitions ?? [];
      const leaderless = found.filter((p) => p.leader < 0).length;
      if (found.length === partitions && leaderless === 0) {
        const offsets = await admin.fetchTopicOffsets(topic);
        if (offsets.length === partitions) return;
        last = `metadata shows ${found.length} partitions, but offsets were returned for ${offsets.length}`;
      } else {
        last = `metadata shows ${found.length} partitions (${leaderless} without a leader)`;
      }
      // A different partition count that stays will not change by waiting: the topic existed already (created earlier, or
      // auto-created on first use).
      mismatches = found.length > 0 && found.length !== partitions ? mismatches + 1 : 0;
      if (mismatches >= 3) {
        throw new Error(
          `createTopic(${topic}, ${partitions}): the topic exists with ${found.length} partitions, not ${partitions} ` +
            `(created earlier, or auto-created on first use before createTopic ran); use a new topic name`,
        );
      }
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('createTopic(')) throw error;
      last = describe(error);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `createTopic(${topic}, ${partitions}): the topic did not show ${partitions} partitions within ${VERIFY_TIMEOUT_MS} ms; last: ${last}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * The partition kafkajs' default producer partitioner picks for a key on an existing
 * topic: lets a test know which partition a record lands on before reading it back.
 */
export async function partitionerFor(brokers: string[], topic: string): Promise<(key: string | null) => number> {
  const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  const partitionCount = (await admin.fetchTopicOffsets(topic)).length;
  await admin.disconnect();
  const partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const partitioner = kafkajs.Partitioners.DefaultPartitioner();
  return (key) => partitioner({ topic, partitionMetadata, message: { key, value: null } });
}
