// Turning adapter errors into Temporal failures the workflow can act on: the failure `type` is the
// Runway client's error kind, retryability follows the kind, and rate limits carry the server's delay.
import { ApplicationFailure } from '@temporalio/common';
import { isRunwayError, type RunwayError } from '../src/runway/errors';
import { redactString } from '../src/redact';

import { NON_RETRYABLE_KINDS } from '../workflows/types';

export { NON_RETRYABLE_KINDS };

export function runwayFailure(err: RunwayError, extra?: Record<string, unknown>): ApplicationFailure {
  const nonRetryable = (NON_RETRYABLE_KINDS as readonly string[]).includes(err.kind) || !err.retryable;
  return ApplicationFailure.create({
    type: err.kind,
    message: redactString(err.message),
    nonRetryable,
    nextRetryDelay: err.retryAfterMs !== undefined ? Math.max(100, err.retryAfterMs) : undefined,
    details: [{ kind: err.kind, status: err.status, runwayMessage: err.runwayMessage, ...extra }],
  });
}

/**
 * Rethrows anything as a Temporal failure with secrets scrubbed; Runway errors keep their kind (and
 * carry `extra` in their details, e.g. when the request was sent).
 */
export function asFailure(err: unknown, extra?: Record<string, unknown>): never {
  if (isRunwayError(err)) throw runwayFailure(err, extra);
  if (err instanceof ApplicationFailure) throw err;
  if (err instanceof Error && (err.name === 'CancelledFailure' || err.name === 'AbortError')) throw err;
  const message = redactString(err instanceof Error ? err.message : String(err));
  throw ApplicationFailure.create({ type: 'unexpected', message, nonRetryable: false });
}

export function fail(type: string, message: string, opts: { nonRetryable?: boolean; details?: unknown[] } = {}): never {
  throw ApplicationFailure.create({ type, message: redactString(message), nonRetryable: opts.nonRetryable ?? true, details: opts.details });
}

/**
 * Rethrows anything as a retryable failure (secrets scrubbed, the kind kept): for steps that must be
 * retried until done, such as ending a Runway session, where even a 401 (a key being rotated) heals.
 */
export function retryableFailure(err: unknown): never {
  if (err instanceof Error && (err.name === 'CancelledFailure' || err.name === 'AbortError')) throw err;
  const kind = isRunwayError(err) ? err.kind : err instanceof ApplicationFailure ? (err.type ?? 'unexpected') : 'unexpected';
  const message = redactString(err instanceof Error ? err.message : String(err));
  throw ApplicationFailure.create({
    type: kind,
    message,
    nonRetryable: false,
    ...(isRunwayError(err) && err.retryAfterMs !== undefined ? { nextRetryDelay: Math.max(100, err.retryAfterMs) } : {}),
  });
}
