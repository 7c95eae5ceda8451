// Heartbeats while an activity waits on one call. A heartbeating activity's heartbeat timeout is short
// (a dead worker is noticed in seconds), shorter than an HTTP deadline (Runway's 30 s): without this a
// slow answer would look like a dead worker and the attempt would be abandoned and retried.
import { activityInfo, heartbeat } from '@temporalio/activity';

/** Awaits `call`, heartbeating `details` every `everyMs` meanwhile (regular activities only: local ones have no heartbeat). */
export async function heartbeatWhile<T>(call: Promise<T>, details?: unknown, everyMs = 2000): Promise<T> {
  if (!inRegularActivity()) return await call;
  const timer = setInterval(() => heartbeat(details), everyMs);
  try {
    return await call;
  } finally {
    clearInterval(timer);
  }
}

/** True inside a regular activity (local activities have no heartbeat; a direct call, as in tests, has no context). */
export function inRegularActivity(): boolean {
  try {
    return !activityInfo().isLocal;
  } catch {
    return false;
  }
}
