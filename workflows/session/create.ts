// Creating a Runway session. Create is not idempotent at Runway, so its one rule: an answer that may
// have created a session (lost, timed out) is recorded for the reaper before creating again; only a
// clean failure (nothing created) is simply retried. Runway's own `concurrency_limited` puts a new
// session back to waiting for capacity.
import * as wf from '@temporalio/workflow';
import { runwayMaxDuration } from '../input';
import type { BridgeMode } from '../types';
import { acquireSlot, capacityWait, capacityWaitLeft } from './admission';
import { answeredStatus, failureMessage, failureType, isTransient, retryDelayOf, sessionFailure, timedOut } from './failures';
import type { SessionRun } from './run';

/** A direct-mode avatar token lives as long as one Runway session may (at most 30 min), plus a margin. */
function tokenTtlSeconds(run: SessionRun): number {
  return Math.min(runwayMaxDuration(run.input) ?? 1800, 1800) + 600;
}

/** One create call: not cancellable (a create in flight must return its id so teardown can end it). */
async function createOnce(run: SessionRun, mode: BridgeMode): Promise<string> {
  const { input } = run;
  const { runwaySessionId } = await wf.CancellationScope.nonCancellable(() => run.acts.createRunwaySession({
    conversationId: input.conversationId,
    avatar: input.avatar,
    maxDuration: runwayMaxDuration(input),
    personality: input.personality,
    startScript: input.startScript,
    tools: input.tools,
    ...(mode === 'direct'
      ? { direct: { roomName: run.room, avatarIdentity: run.directAvatarIdentity, agentIdentity: input.livekit.agentIdentity, tokenTtlSeconds: tokenTtlSeconds(run) } }
      : {}),
  }));
  run.created(runwaySessionId, mode);
  return runwaySessionId;
}

/**
 * Creates a Runway session for `mode`, waiting for a slot first (a renewal holds its own). Gives up
 * after `maxCreateAttempts` lost answers, or 6 failed answers, in a row.
 */
export async function createRunwaySession(run: SessionRun, mode: BridgeMode, opts: { renewal?: boolean } = {}): Promise<string> {
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
    const attemptAt = new Date(Date.now()).toISOString();
    try {
      return await createOnce(run, mode);
    } catch (err) {
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
        if (status !== undefined && status !== 429) recordAmbiguous(run, attemptAt, `create answered ${status}`);
        const delay = retryDelayOf(err) ?? Math.min(10_000, 1000 * 2 ** (transientFailures - 1));
        run.event('create_retry', `create failed (${failureMessage(err)}); trying again in ${delay} ms`);
        await run.untilEnd(() => wf.sleep(delay));
        continue;
      }
      recordAmbiguous(run, attemptAt, `create answer was lost (${failureMessage(err)})`);
      lostAnswers++;
    }
  }
}

/** A create that may have made a Runway session nobody knows the id of: the reaper matches it by time and avatar. */
function recordAmbiguous(run: SessionRun, at: string, why: string): void {
  run.state.ambiguousCreates.push({ at, avatar: run.input.avatar });
  run.flag('ambiguous_create');
  run.event('ambiguous_create', `${why}: a Runway session may exist; recorded for the reaper, creating again`);
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
