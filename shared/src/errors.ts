import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The error catalogue: every error a client or operator can see has a stable code, an
 * HTTP status, and whether retrying may help.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, retriable: false },
  VALIDATION_FAILED: { status: 400, retriable: false },
  UNAUTHORIZED: { status: 401, retriable: false },
  FORBIDDEN: { status: 403, retriable: false },
  UNKNOWN_SOURCE: { status: 404, retriable: false },
  NOT_FOUND: { status: 404, retriable: false },
  CONFLICT: { status: 409, retriable: false },
  MODEL_REJECTED: { status: 422, retriable: false },
  MODEL_OUTPUT_INVALID: { status: 422, retriable: false },
  RATE_LIMITED: { status: 429, retriable: true },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false },
  PAYLOAD_TOO_LARGE: { status: 413, retriable: false },
  URI_TOO_LONG: { status: 414, retriable: false },
  EVENT_LOG_UNAVAILABLE: { status: 503, retriable: true },
  ONLINE_STORE_UNAVAILABLE: { status: 503, retriable: true },
  ROUTING_STORE_UNAVAILABLE: { status: 503, retriable: true },
  MODEL_UNAVAILABLE: { status: 503, retriable: true },
  OVERLOADED: { status: 503, retriable: true },
  SHUTTING_DOWN: { status: 503, retriable: true },
  INTERNAL: { status: 500, retriable: true },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A wrong or missing option of a command (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A command line's usage error: a `UsageError`, or an error of node:util's `parseArgs` (an unknown option, a missing value). */
export function isBadOption(error: unknown): boolean {
  return error instanceof UsageError || String((error as { code?: unknown } | null)?.code).startsWith('ERR_PARSE_ARGS');
}

/**
 * The first option a command line gives twice that takes one value (a second would silently
 * replace the first), from the tokens of node:util's `parseArgs` (`tokens: true`) and its options.
 */
export function repeatedOption(
  tokens: readonly { kind: string; name?: string }[] | undefined,
  options: Readonly<Record<string, { type: string; multiple?: boolean }>>,
): string | undefined {
  const seen = new Set<string>();
  for (const token of tokens ?? []) {
    if (token.kind !== 'option' || token.name === undefined) continue;
    const option = options[token.name];
    if (option?.type !== 'string' || option.multiple) continue;
    if (seen.has(token.name)) return token.name;
    seen.add(token.name);
  }
  return undefined;
}

export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly retriable: boolean;
  /** The request field at fault, when there is one (dotted path). */
  readonly field?: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; field?: string }) {
    super(message, options);
    if (options?.field !== undefined) this.field = options.field;
    this.name = 'TributaryError';
    this.code = code;
    this.httpStatus = ERRORS[code].status;
    this.retriable = ERRORS[code].retriable;
  }
}

/**
 * node:util's `parseArgs`, refusing an option of one value given twice (`UsageError`): with
 * `parseArgs` alone the last would silently win (`--cutoff A --cutoff B` built a set at B).
 */
export function parseCommandOptions<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const parsed = parseArgs({ ...config, tokens: true }) as ReturnType<typeof parseArgs<T>> & { tokens: { kind: string; name?: string }[] };
  const twice = repeatedOption(parsed.tokens, (config.options ?? {}) as Record<string, { type: string; multiple?: boolean }>);
  if (twice !== undefined) throw new UsageError(`--${twice} is given twice`);
  return parsed;
}

/** The longest reason (`--reason`, an admin request's `reason`) the audit log keeps. */
export const REASON_MAX_LENGTH = 1000;

/**
 * What is wrong with a text kept in the audit log as one line (a reason, who made a change), or
 * null: longer than `max`, or with a control character (a line break would print as a forged
 * line of the log).
 */
export function auditTextProblem(text: string, max = REASON_MAX_LENGTH): string | null {
  if (text.length > max) return `is ${text.length} characters long; at most ${max}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) return 'has a control character (a line break, a tab); give it on one line';
  return null;
}
