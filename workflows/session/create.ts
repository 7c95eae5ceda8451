// Creating a Runway session. Create is not idempotent at Runway, so its one rule: an answer that may
// have created a session (lost, timed out) is recorded for the reaper before creating again; only a
// clean failure (nothing created) is simply retried. Runway's own `concurrency_limited` puts a new
// session back to waiting for capacity.
import * as wf from '@temporalio/workflow';
import { runwayMaxDuration } from '../input';
import type { BridgeMode } from '../types';
import { acquireSlot } from './admission';
import { failureMessage, failureType, isTransient, retryDelayOf, sessionFailure, timedOut } from './failures';
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
 * after `maxCreateAttempts` sessions or lost answers in this bring-up.
 */
export async function createRunwaySession(run: SessionRun, mode: BridgeMode, opts: { renewal?: boolean } = {}): Promise<string> {
  let limitedWaitMs = 1000;
  let transientFailures = 0;
  const attempts = () => run.state.runwaySessionIds.length + run.state.ambiguousCreates.length;
  const attemptsBefore = attempts();
  for (;;) {
    if (attempts() - attemptsBefore >= run.timing.maxCreateAttempts) {
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
        // Runway counts more sessions than we do (another client on the account): wait, then try again.
        if (opts.renewal) throw err;
        await waitForRunwayCapacity(run, err, limitedWaitMs);
        limitedWaitMs = Math.min(30_000, limitedWaitMs * 2);
        continue;
      }
      if (type !== 'ambiguous' && !timedOut(err)) {
        // A clean transient failure (5xx before sending, 429, a reset before sending): nothing was created.
        if (!isTransient(err) || transientFailures >= 5) throw err;
        transientFailures++;
        const delay = retryDelayOf(err) ?? Math.min(10_000, 1000 * 2 ** (transientFailures - 1));
        run.event('create_retry', `create failed (${failureMessage(err)}); trying again in ${delay} ms`);
        await run.untilEnd(() => wf.sleep(delay));
        continue;
      }
      run.state.ambiguousCreates.push({ at: attemptAt, avatar: run.input.avatar });
      run.flag('ambiguous_create');
      run.event('ambiguous_create', `create answer was lost (${failureMessage(err)}): a Runway session may exist; recorded for the reaper, creating again`);
    }
  }
}

async function waitForRunwayCapacity(run: SessionRun, err: unknown, waitMs: number): Promise<void> {
  run.setPhase('waiting_capacity');
  run.event('concurrency_limited', `Runway refused: ${failureMessage(err)}; waiting for capacity`);
  if (run.capacityDeadline !== undefined && Date.now() + waitMs > run.capacityDeadline) {
    throw sessionFailure('capacity_timeout', `Runway kept refusing new sessions for ${run.timing.capacityWaitSeconds} s: ${failureMessage(err)}`);
  }
  await run.untilEnd(() => wf.sleep(waitMs));
}
