// Creating a Runway session. Create is not idempotent at Runway, so its one rule: an answer that may
// have created a session (lost, timed out) is recorded for the reaper before creating again; only a
// clean failure (nothing created) is simply retried. Runway's own `concurrency_limited` puts a new
// session back to waiting for capacity.
import * as wf from '@temporalio/workflow';
import { runwayMaxDuration } from '../input';
import type { BridgeMode } from '../types';
import { acquireSlot, capacityWait, capacityWaitLeft } from './admission';
import { answeredStatus, failureMessage, failureType, isTransient, retryDelayOf, sentAt, sessionFailure, timedOut } from './failures';
import type { SessionRun } from './run';

/** A direct-mode avatar token lives as long as one Runway session may (at most 30 min), plus a margin. */
function tokenTtlSeconds(run: SessionRun): number {
  return Math.min(runwayMaxDuration(run.input) ?? 1800, 1800) + 600;
}

/** One create call: not cancellable (a create in flight must return its id so teardown can end it). */
async function createOnce(run: SessionRun, mode: BridgeMode, avatarIdentity: string, current?: CurrentTurns): Promise<string> {
  const { input } = run;
  const { runwaySessionId } = await wf.CancellationScope.nonCancellable(() =>
    run.acts.createRunwaySession({
      conversationId: input.conversationId,
      avatar: input.avatar,
      maxDuration: runwayMaxDuration(input),
      personality: input.personality,
      startScript: input.startScript,
      tools: input.tools,
      ...continuation(run, mode, current),
      ...(mode === 'direct'
        ? { direct: { roomName: run.room, avatarIdentity, agentIdentity: input.livekit.agentIdentity, tokenTtlSeconds: tokenTtlSeconds(run) } }
        : {}),
    }),
  );
  if (mode === 'direct') run.avatarIdentityOf.set(runwaySessionId, avatarIdentity);
  run.created(runwaySessionId, mode);
  return runwaySessionId;
}

/**
 * A conversation that was live before (renewal, or a replacement after a cut) continues: no opening
 * line; in relay mode (Runway's character converses) the conversation so far goes with it. Direct
 * mode's avatar only voices the customer's agent, which keeps its own context.
 */
function continuation(run: SessionRun, mode: BridgeMode, current?: CurrentTurns) {
  if (run.conversationLiveSince === undefined) return {};
  return { continuation: { previousRunwaySessionIds: run.state.runwaySessionIds.slice(-7), carryContext: mode === 'relay', ...(current ? { current } : {}) } };
}

/** Relay renewal: what the relay saw said in the session being replaced. */
export type CurrentTurns = { runwaySessionId: string; turns: { role: 'user' | 'assistant'; content: string }[] };

/**
 * Creates a Runway session for `mode`, waiting for a slot first (a renewal holds its own). Gives up
 * after `maxCreateAttempts` lost answers, or 6 failed answers, in a row.
 */
export async function createRunwaySession(run: SessionRun, mode: BridgeMode, opts: { renewal?: boolean; current?: CurrentTurns } = {}): Promise<string> {
  let limitedWaitMs = 1000;
  let transientFailures = 0;
  let lostAnswers = 0;
  for (;;) {
    if (lostAnswers >= run.timing.maxCreateAttempts) {
      throw sessionFailure('create_attempts_exhausted', `gave up after ${run.timing.maxCreateAttempts} Runway session attempts`);
    }
    if (!opts.renewal) {
      await acquireSlot(run);
      run.setPhase('creating');
    }
    const attemptAt = Date.now();
    const avatarIdentity = run.directAvatarIdentity;
    try {
      return await createOnce(run, mode, avatarIdentity, opts.current);
    } catch (err) {
      const attempt: Attempt = { at: sentAt(err) ?? attemptAt, mode, avatarIdentity };
      const type = failureType(err);
      if (type === 'concurrency_limited') {
        // Runway counts more sessions than we do (another client on the account, a session whose
        // create answer was lost): the slot goes back to the controller at once with that news, and
        // the next grant is the wait (never sooner than a short back-off).
        if (opts.renewal) throw err;
        await refusedByRunway(run, err, limitedWaitMs);
        limitedWaitMs = Math.min(30_000, limitedWaitMs * 2);
        continue;
      }
      if (type !== 'ambiguous' && !timedOut(err)) {
        if (!isTransient(err) || transientFailures >= 5) throw err;
        transientFailures++;
        // Only "not sent" and 429 are clean. Any other answer to a request that reached Runway (500,
        // 502, 503, 408, 409) may have come after the session was made: recorded for the reaper too.
        const status = answeredStatus(err);
        if (status !== undefined && status !== 429) recordAmbiguous(run, attempt, `create answered ${status}`);
        const delay = retryDelayOf(err) ?? Math.min(10_000, 1000 * 2 ** (transientFailures - 1));
        run.event('create_retry', `create failed (${failureMessage(err)}); trying again in ${delay} ms`);
        run.publish(); // the create is brief (no upsert before it); this wait is not
        await run.untilEnd(() => wf.sleep(delay));
        continue;
      }
      recordAmbiguous(run, attempt, `create answer was lost (${failureMessage(err)})`);
      lostAnswers++;
    }
  }
}

interface Attempt {
  /** When the request was sent (the activity's word), else when it was scheduled. */
  at: number;
  mode: BridgeMode;
  avatarIdentity: string;
}

/**
 * A create that may have made a Runway session nobody knows the id of: the reaper matches it by avatar
 * and by the time it was made, between the send and now (the failure is known). In direct mode its
 * avatar may still join the customer's room: its identity is used up (see SessionRun.usedUpAvatarIdentity).
 */
function recordAmbiguous(run: SessionRun, attempt: Attempt, why: string): void {
  const direct = attempt.mode === 'direct';
  run.state.ambiguousCreates.push({
    at: new Date(attempt.at).toISOString(),
    until: new Date(Date.now()).toISOString(),
    avatar: run.input.avatar,
    ...(direct ? { avatarIdentity: attempt.avatarIdentity } : {}),
  });
  if (run.state.ambiguousCreates.length > 50) run.state.ambiguousCreates.splice(0, run.state.ambiguousCreates.length - 50);
  run.flag('ambiguous_create');
  run.event('ambiguous_create', `${why}: a Runway session may exist; recorded for the reaper, creating again`);
  if (direct) run.usedUpAvatarIdentity(attempt.avatarIdentity);
}

/**
 * Runway refused the create (`concurrency_limited`): the slot goes back with that news (acquireSlot,
 * next round) and the session waits for another; a short back-off runs alongside, so a grant that
 * comes at once does not hit Runway again straight away. Both count against the capacity wait.
 */
async function refusedByRunway(run: SessionRun, err: unknown, backOffMs: number): Promise<void> {
  run.setPhase('waiting_capacity');
  run.event('concurrency_limited', `Runway refused: ${failureMessage(err)}; slot given back, waiting for another`);
  if (capacityWaitLeft(run) <= 0) {
    throw sessionFailure('capacity_timeout', `Runway kept refusing new sessions for ${run.timing.capacityWaitSeconds} s: ${failureMessage(err)}`);
  }
  const until = Date.now() + backOffMs;
  await acquireSlot(run);
  const rest = until - Date.now();
  if (rest > 0) await run.untilEnd(() => capacityWait(run, () => false, rest));
  run.setPhase('creating'); // the slot is held again: the next round creates on it
}
