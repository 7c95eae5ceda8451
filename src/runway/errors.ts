// One error type for every way a Runway call can fail, with a machine-readable kind the workflow acts on.
import { redactString } from '../redact';

export type RunwayErrorKind =
  | 'invalid_request'
  | 'integration_unsupported'
  | 'unauthorized'
  | 'not_found'
  | 'rate_limited'
  | 'concurrency_limited'
  | 'session_expired'
  | 'already_consumed'
  | 'unavailable'
  | 'ambiguous'
  | 'invalid_response';

export interface RunwayErrorInit {
  kind: RunwayErrorKind;
  endpoint: string;
  message: string;
  status?: number;
  retryable: boolean;
  retryAfterMs?: number;
  runwayMessage?: string;
}

export class RunwayError extends Error {
  override readonly name = 'RunwayError';
  readonly kind: RunwayErrorKind;
  readonly endpoint: string;
  readonly status?: number;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly runwayMessage?: string;

  constructor(init: RunwayErrorInit) {
    super(redactString(init.message));
    this.kind = init.kind;
    this.endpoint = init.endpoint;
    this.status = init.status;
    this.retryable = init.retryable;
    this.retryAfterMs = init.retryAfterMs;
    this.runwayMessage = init.runwayMessage !== undefined ? redactString(init.runwayMessage) : undefined;
  }

  toJSON() {
    return { name: this.name, kind: this.kind, endpoint: this.endpoint, status: this.status, retryable: this.retryable, retryAfterMs: this.retryAfterMs, message: this.message };
  }
}

export function isRunwayError(err: unknown): err is RunwayError {
  return err instanceof RunwayError;
}

/** The Retry-After delay: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | undefined {
  const get = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const ms = get('retry-after-ms');
  if (ms !== undefined && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = get('retry-after');
  if (ra === undefined) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Math.max(0, Number(ra) * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Classifies an HTTP error answer, following Runway's SDK retry rule (408/409/429/5xx) and x-should-retry. */
export function classifyHttpError(endpoint: string, status: number, body: unknown, headers: Record<string, string | string[] | undefined>): RunwayError {
  const runwayMessage = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string'
    ? (body as { error: string }).error
    : typeof body === 'string' && body.length < 500 ? body : undefined;
  const msg = runwayMessage ?? '';
  const shouldRetryHeader = headers['x-should-retry'];
  const shouldRetry = shouldRetryHeader === 'true' ? true : shouldRetryHeader === 'false' ? false : undefined;
  const sdkRetryable = status === 408 || status === 409 || status === 429 || status >= 500;
  const retryable = shouldRetry ?? sdkRetryable;
  const make = (kind: RunwayErrorKind, extra: Partial<RunwayErrorInit> = {}) =>
    new RunwayError({ kind, endpoint, status, retryable, runwayMessage, message: `Runway ${endpoint} failed with ${status}${msg ? `: ${msg}` : ''}`, ...extra });

  if (/concurren/i.test(msg) && (status === 429 || status === 400 || status === 403)) {
    return make('concurrency_limited', { retryable: true, retryAfterMs: retryAfterMs(headers) });
  }
  if (status === 429) return make('rate_limited', { retryAfterMs: retryAfterMs(headers) });
  if (status === 400 && /unrecognized key:\s*(integration|livekit)\b/i.test(msg)) return make('integration_unsupported', { retryable: false });
  if (status === 400 && /integration/i.test(msg) && /(not (available|enabled|supported)|unsupported)/i.test(msg)) return make('integration_unsupported', { retryable: false });
  if ((status === 400 || status === 410) && /expired/i.test(msg)) return make('session_expired', { retryable: false });
  if ((status === 400 || status === 409) && /already consumed/i.test(msg)) return make('already_consumed', { retryable: false });
  if (status === 400 || status === 422) return make('invalid_request', { retryable: shouldRetry ?? false });
  if (status === 401 || status === 403) return make('unauthorized', { retryable: shouldRetry ?? false });
  if (status === 404) return make('not_found', { retryable: shouldRetry ?? false });
  if (status >= 500 || status === 408 || status === 409) return make('unavailable', { retryAfterMs: retryAfterMs(headers) });
  return make('invalid_request');
}
