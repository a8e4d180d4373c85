import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyContextConfig } from 'fastify';
import type { TSchema } from 'typebox';
import {
  checkEvent,
  recordValidator,
  TributaryError,
  within,
  type Counter,
  type EventLog,
  type EventSource,
  type OutgoingRecord,
  Type,
} from '@tributary/shared';
import { ErrorResponse } from '../errors.js';

export interface EventsRouteOptions {
  eventLog: EventLog;
  sources: (EventSource & { schema: TSchema })[];
  maxEvents: number;
  /** Longest wait for the event log to take a request's events before it is answered 503. */
  publishTimeoutMs: number;
  pushed: Counter;
  config?: FastifyContextConfig;
}

/**
 * `eventLog.publish`, failing with "no answer within <ms> ms" when it takes longer: Kafka's
 * client retries for most of a minute while the brokers are unreachable, and a request (and a
 * shutdown, which waits for the requests in flight) must not wait that long. The publish
 * itself goes on: the events may still reach the topic.
 */
function publishWithin(eventLog: EventLog, topic: string, records: OutgoingRecord[], ms: number): Promise<void> {
  return within(eventLog.publish(topic, records), ms);
}

/** The push API: producers without a Kafka client publish events over HTTP. */
export const eventsRoute: FastifyPluginAsyncTypebox<EventsRouteOptions> = async (app, options) => {
  const validators = new Map(
    options.sources.map((s) => [s.name, { source: s, validator: recordValidator<Record<string, unknown>>(s.schema) }]),
  );
  app.post(
    '/v1/events/:source',
    {
      config: options.config ?? {},
      schema: {
        summary: 'Publish one event (a JSON object) or several (a JSON array) to a source topic',
        params: Type.Object({ source: Type.String() }),
        body: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Array(Type.Unknown())]),
        response: {
          202: Type.Object({ accepted: Type.Integer(), topic: Type.String() }),
          400: ErrorResponse,
          401: ErrorResponse,
          404: ErrorResponse,
          413: ErrorResponse,
          414: ErrorResponse,
          415: ErrorResponse,
          429: ErrorResponse,
          500: ErrorResponse,
          503: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const entry = validators.get(request.params.source);
      if (!entry) {
        throw new TributaryError(
          'UNKNOWN_SOURCE',
          `no event source "${request.params.source}" (known: ${[...validators.keys()].join(', ')})`,
        );
      }
      const batch = Array.isArray(request.body);
      const events = batch ? (request.body as unknown[]) : [request.body];
      if (events.length === 0) throw new TributaryError('VALIDATION_FAILED', 'the array of events is empty');
      if (events.length > options.maxEvents) {
        throw new TributaryError('VALIDATION_FAILED', `${events.length} events in one request; at most ${options.maxEvents} are accepted`);
      }
      const records: OutgoingRecord[] = [];
      const receivedAt = Date.now();
      for (const [i, event] of events.entries()) {
        const checked = entry.validator.validate(event);
        if (!checked.ok) throw new TributaryError('VALIDATION_FAILED', `${batch ? `event [${i}]: ` : ''}${checked.detail}`);
        // What the feature pipeline would dead-letter as invalid whenever it read it: refused here instead.
        const usable = checkEvent(entry.source, checked.value, receivedAt, 'the time it was received');
        if (!usable.ok) throw new TributaryError('VALIDATION_FAILED', `${batch ? `event [${i}]: ` : ''}${usable.detail}`);
        records.push({ key: String(checked.value[entry.source.keyField]), value: JSON.stringify(checked.value) });
      }
      try {
        await publishWithin(options.eventLog, entry.source.topic, records, options.publishTimeoutMs);
      } catch (error) {
        throw new TributaryError('EVENT_LOG_UNAVAILABLE', `could not publish to ${entry.source.topic}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      options.pushed.inc({ source: entry.source.name }, records.length);
      return reply.status(202).send({ accepted: records.length, topic: entry.source.topic });
    },
  );
};
