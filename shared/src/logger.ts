import { pino, type DestinationStream, type Logger } from 'pino';
import { ConfigError, LOG_LEVELS } from './config.js';
import { traceLogFields } from './tracing.js';

export type { Logger };

/**
 * A service's logger; while a span is active, its lines carry `trace_id` and `span_id`. The
 * services pass the LOG_LEVEL of their loaded configuration; a level pino does not know (from
 * the environment of a tool that reads no configuration) is refused as that setting's error,
 * not thrown by pino with a stack trace.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const known = level.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(known)) {
    throw new ConfigError(`invalid configuration:\n  LOG_LEVEL=${JSON.stringify(level)}: must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return pino({ name, level: known, base: { service: name }, mixin: traceLogFields }, destination);
}

/** A service that cannot start says why in plain words on stderr, and exits with status 1. */
export function exitOnStartupError(service: string, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${service}: cannot start: ${message}\n`);
  process.exit(1);
}
