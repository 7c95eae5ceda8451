// One error type for every way a Runway call can fail, with a machine-readable kind the workflow acts on.
// Messages are redacted at construction, so neither `message`, `stack` nor `toJSON()` can carry a secret.
import { redactString } from '../redact';

export const RUNWAY_ERROR_KINDS = [
  'invalid_request', // 400/422 (and other 4xx not listed below)
  'integration_unsupported', // 400 "Unrecognized key: integration|livekit", or livekit integration not available
  'unauthorized', // 401/403
  'not_found', // 404
  'rate_limited', // 429 not about concurrency
  'concurrency_limited', // 429/400 naming the account's concurrency limit
  'session_expired', // consume after expiresAt (400/410 /expired/)
  'already_consumed', // consume a second time (400/409 /already consumed/)
  'unavailable', // 5xx, 408, 409, connection failures and timeouts (on calls safe to repeat)
  'ambiguous', // a create whose answer was lost: the session may exist
  'invalid_response', // a 2xx whose body fails validation
] as const;
export type RunwayErrorKind = (typeof RUNWAY_ERROR_KINDS)[number];

/** The plain (JSON) shape of a RunwayError, e.g. for Temporal failure details or logs. */
export interface RunwayErrorJSON extends RunwayErrorInit {
  name: 'RunwayError';
}

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
  /** Which call failed: 'create', 'status', 'consume', 'cancel', 'conversation', ... */
  readonly endpoint: string;
  /** HTTP status, when an answer arrived. */
  readonly status?: number;
  /** Whether repeating the same call can succeed (Runway SDK rule, see classifyHttpError). */
  readonly retryable: boolean;
  /** Delay the server asked for (retry-after-ms / Retry-After). */
  readonly retryAfterMs?: number;
  /** Runway's `error` text, redacted. */
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

  toJSON(): RunwayErrorJSON {
    const out: RunwayErrorJSON = { name: this.name, kind: this.kind, endpoint: this.endpoint, message: this.message, retryable: this.retryable };
    if (this.status !== undefined) out.status = this.status;
    if (this.retryAfterMs !== undefined) out.retryAfterMs = this.retryAfterMs;
    if (this.runwayMessage !== undefined) out.runwayMessage = this.runwayMessage;
    return out;
  }

  static fromJSON(json: RunwayErrorJSON): RunwayError {
    return new RunwayError(json);
  }
}

export function isRunwayError(err: unknown): err is RunwayError {
  return err instanceof RunwayError;
}

type Headers = Record<string, string | string[] | undefined>;
function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The delay the server asked for: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date. */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number.parseFloat(header(headers, 'retry-after-ms') ?? '');
  if (Number.isFinite(ms)) return Math.max(0, Math.round(ms));
  const ra = header(headers, 'retry-after')?.trim();
  if (!ra) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra)) return Math.round(Number(ra) * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Runway's error text: the `error` string of a JSON body (or `message`), else a short plain-text body. */
export function runwayErrorText(body: unknown): string | undefined {
  if (typeof body === 'object' && body !== null) {
    const { error, message } = body as { error?: unknown; message?: unknown };
    if (typeof error === 'string') return error;
    if (typeof message === 'string') return message;
    return undefined;
  }
  if (typeof body === 'string' && body.trim()) return body.trim().slice(0, 500);
  return undefined;
}

const CONCURRENCY = /concurren/i;
// "Unrecognized key: livekit", zod's "Unrecognized key(s) in object: 'integration'", "Unrecognized keys: a, livekit"
const UNRECOGNIZED_INTEGRATION = /unrecognized key[^:]*:.*\b(integration|livekit)\b/i;
const INTEGRATION_UNAVAILABLE = /(integration|livekit)\b.*\b(not (available|enabled|supported|allowed)|unavailable|unsupported|disabled)/i;

/**
 * Classifies an HTTP error answer. `retryable` follows Runway's SDK (408, 409, 429 and 5xx retry; an
 * `x-should-retry: true|false` header overrides), except for kinds whose meaning settles it: a consume
 * that expired or was already consumed, or an unsupported integration, never succeeds on repeat, and
 * concurrency_limited is retryable but distinct so callers wait for capacity rather than retry blindly.
 * `create` is passed so a 504 on create (the gateway gave up; the session may exist) is `ambiguous`.
 */
export function classifyHttpError(endpoint: string, status: number, body: unknown, headers: Headers): RunwayError {
  const runwayMessage = runwayErrorText(body);
  const text = runwayMessage ?? '';
  const xShouldRetry = header(headers, 'x-should-retry');
  const override = xShouldRetry === 'true' ? true : xShouldRetry === 'false' ? false : undefined;
  const sdkRetryable = override ?? (status === 408 || status === 409 || status === 429 || status >= 500);
  const retryAfterMs = parseRetryAfter(headers);

  const make = (kind: RunwayErrorKind, retryable: boolean) =>
    new RunwayError({
      kind,
      endpoint,
      status,
      retryable,
      retryAfterMs: retryable ? retryAfterMs : undefined,
      runwayMessage,
      message: `Runway ${endpoint} failed with ${status} (${kind})${text ? `: ${text}` : ''}`,
    });

  if ((status === 429 || status === 400) && CONCURRENCY.test(text)) return make('concurrency_limited', true);
  if (status === 400 && (UNRECOGNIZED_INTEGRATION.test(text) || INTEGRATION_UNAVAILABLE.test(text))) return make('integration_unsupported', false);
  if ((status === 400 || status === 410) && /expired/i.test(text)) return make('session_expired', false);
  if ((status === 400 || status === 409) && /already consumed/i.test(text)) return make('already_consumed', false);
  if (status === 429) return make('rate_limited', sdkRetryable);
  if (status === 401 || status === 403) return make('unauthorized', sdkRetryable);
  if (status === 404) return make('not_found', sdkRetryable);
  if (endpoint === 'create' && status === 504) return make('ambiguous', false);
  if (status >= 500 || status === 408 || status === 409) return make('unavailable', sdkRetryable);
  return make('invalid_request', sdkRetryable); // 400, 422 and any other 4xx
}
