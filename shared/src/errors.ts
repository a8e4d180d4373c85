/**
 * The error catalogue: every error a client or operator can see has a stable code, an
 * HTTP status, and whether retrying may help.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, retriable: false },
  VALIDATION_FAILED: { status: 400, retriable: false },
  UNKNOWN_SOURCE: { status: 404, retriable: false },
  NOT_FOUND: { status: 404, retriable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false },
  PAYLOAD_TOO_LARGE: { status: 413, retriable: false },
  EVENT_LOG_UNAVAILABLE: { status: 503, retriable: true },
  ONLINE_STORE_UNAVAILABLE: { status: 503, retriable: true },
  MODEL_UNAVAILABLE: { status: 503, retriable: true },
  INTERNAL: { status: 500, retriable: true },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TributaryError';
    this.code = code;
    this.httpStatus = ERRORS[code].status;
    this.retriable = ERRORS[code].retriable;
  }
}
