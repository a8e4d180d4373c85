import { pino, type DestinationStream, type Logger } from 'pino';
import { traceLogFields } from './tracing.js';

export type { Logger };

/** A service's logger; while a span is active, its lines carry `trace_id` and `span_id`. */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  return pino({ name, level, base: { service: name }, mixin: traceLogFields }, destination);
}

/** A service that cannot start says why in plain words on stderr, and exits with status 1. */
export function exitOnStartupError(service: string, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${service}: cannot start: ${message}\n`);
  process.exit(1);
}
