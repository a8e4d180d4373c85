/**
 * kafkajs 2.2.4 keeps every open broker connection in a 1 ms timer loop: after each check of
 * its request queue it schedules the next one, with a negative delay when nothing waits and
 * no throttle is on (tulios/kafkajs#1556, #1604, #1704; not fixed in any release). Each loop
 * wakes the event loop ~1,000 times a second for nothing, beside the requests being served.
 *
 * This leaves the scheduling out when no request waits and the connection is not throttled.
 * Every path that leaves a request waiting schedules a check itself (a request pushed while
 * throttled or at the in-flight limit), and every request that ends checks the queue (a
 * response, a timeout), so nothing waits longer than before. Applied once, by the Kafka event
 * log's module, and only to the kafkajs version it was written for.
 */
import { createRequire } from 'node:module';

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

const FIXED_VERSION = '2.2.4';
let applied: boolean | undefined;

/** Whether the fix is in place (false for another kafkajs version, which is left as it is). */
export function fixKafkajsIdleLoop(): boolean {
  if (applied !== undefined) return applied;
  const require = createRequire(import.meta.url);
  const { version } = require('kafkajs/package.json') as { version: string };
  const RequestQueueClass = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue } | undefined;
  const schedule = RequestQueueClass?.prototype.scheduleCheckPendingRequests;
  applied = version === FIXED_VERSION && typeof schedule === 'function';
  if (applied) {
    RequestQueueClass!.prototype.scheduleCheckPendingRequests = function (this: RequestQueue) {
      if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
      schedule!.call(this);
    };
  }
  return applied;
}
