// How the session reads failures: the failure `type` an activity reported (the Runway client's error
// kind, or the activity's own word), timeouts, server-requested delays. Failure kinds are data: the
// workflow branches on these strings, never on messages.
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { NON_RETRYABLE_KINDS } from '../types';

/** Thrown inside the lifecycle when `end` arrives; the driver turns it into `ended_by_request`. */
export class EndRequested extends Error {}

/** A failure of the session itself (as opposed to an activity's transient error). */
export function sessionFailure(code: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message, nonRetryable: true });
}

function causeOf(err: unknown): unknown {
  return err instanceof ActivityFailure ? err.cause : err;
}

export function failureType(err: unknown): string | undefined {
  const cause = causeOf(err);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** An activity attempt that ran out of time (its worker died, or it hung): what it did is unknown. */
export function timedOut(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}

/** A failure a retry may fix (the activity said so). */
export function isTransient(err: unknown): boolean {
  const cause = causeOf(err);
  return cause instanceof ApplicationFailure && !cause.nonRetryable && !(NON_RETRYABLE_KINDS as readonly string[]).includes(cause.type ?? '');
}

/** The server's requested delay (429 Retry-After), carried by the activity's failure. */
export function retryDelayOf(err: unknown): number | undefined {
  const cause = causeOf(err);
  const d = cause instanceof ApplicationFailure ? cause.nextRetryDelay : undefined;
  return d === undefined || d === null ? undefined : msToNumber(d);
}

/** An activity no worker took from its queue in time (a pinned media worker that is gone). */
export function notPickedUp(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
}

export function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** The error code a failed session reports. */
export function failureCode(err: unknown): string {
  return failureType(err) ?? (timedOut(err) ? 'activity_timed_out' : 'internal');
}

/** The HTTP status Runway answered with, when an answer came (the activity's failure details carry it). */
export function answeredStatus(err: unknown): number | undefined {
  const cause = causeOf(err);
  const details = cause instanceof ApplicationFailure ? (cause.details?.[0] as { status?: unknown } | undefined) : undefined;
  return typeof details?.status === 'number' ? details.status : undefined;
}

/** When the failed request was sent (ms since the epoch), when the activity said so (a create's failure does). */
export function sentAt(err: unknown): number | undefined {
  const cause = causeOf(err);
  const details = cause instanceof ApplicationFailure ? (cause.details?.[0] as { sentAt?: unknown } | undefined) : undefined;
  return typeof details?.sentAt === 'number' ? details.sentAt : undefined;
}
