/**
 * A steady load of example transactions, in its own process so that it does not compete
 * with the pipeline it measures: `tsx bench/publish-steady.ts TOPIC RATE SECONDS USERS`.
 * Prints `sent N` when done.
 */
import { createRandom, KafkaEventLog } from '../shared/src/index.js';
import { benchTransactions } from './transactions.js';

const [topic, rateText, secondsText, usersText] = process.argv.slice(2);
const brokers = process.env.KAFKA_BROKERS?.split(',');
if (!topic || !brokers) throw new Error('usage: KAFKA_BROKERS=… tsx bench/publish-steady.ts TOPIC RATE SECONDS USERS');
const rate = Number(rateText ?? 10_000);
const users = Number(usersText ?? 20_000);
const eventLog = new KafkaEventLog({ brokers, clientId: 'bench-publisher' });
const random = createRandom(17);
const tickMs = 10;
const until = Date.now() + Number(secondsText ?? 15) * 1000;
let sent = 0;
const started = Date.now();
while (Date.now() < until) {
  // Catch up with the schedule: the number due by now, minus what was sent.
  const due = Math.floor(((Date.now() - started) * rate) / 1000) - sent;
  if (due > 0) {
    const now = Date.now();
    const first = sent;
    await eventLog.publish(
      topic,
      benchTransactions(
        random,
        due,
        users,
        (i) => `s-${first + i}`,
        () => now,
      ),
    );
    sent += due;
  }
  await new Promise((resolve) => setTimeout(resolve, tickMs));
}
console.log(`sent ${sent} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
await eventLog.close();
