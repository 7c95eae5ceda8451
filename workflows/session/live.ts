// Live: the avatar is in the customer's room. Waits on the serving activity (direct: the monitor;
// relay: the relay) until the conversation is over (end, Runway's end, the room gone, maxDuration),
// and renews the Runway session ahead of Runway's runtime cap. A session cut at the cap before its
// replacement was ready is replaced at once, never silently dropped.
import * as wf from '@temporalio/workflow';
import { isCancellation } from '@temporalio/workflow';
import { releaseExtraSlot } from './admission';
import { bringUp } from './bring-up';
import { EndRequested, failureType, sessionFailure } from './failures';
import { renew } from './renewal';
import type { Outcome, Serving, SessionRun } from './run';
import { startServingActivity, type ServingActivity } from './serving-activity';
import { endRunwaySession } from './teardown';

export type LiveEnd = { kind: 'ended'; outcome: Outcome } | { kind: 'renewed'; next: Serving };

export async function stayLive(run: SessionRun, first: Serving): Promise<LiveEnd> {
  let serving = first;
  let renewRetryAt: number | undefined;
  let renewalFailures = 0;
  let act: ServingActivity | undefined;
  try {
    for (;;) {
      run.throwIfEnding();
      act ??= startServingActivity(run, serving);
      const due = await waitWhileLive(run, serving, act, () => nextDeadline(run, serving, renewRetryAt));
      if (!due) {
        if (await relayAgain(run, serving, act)) {
          act = undefined;
          continue;
        }
        const outcome = await outcomeOf(run, serving, act);
        act = undefined;
        if (!cutAtCapWhileGoingOn(run, outcome, serving)) return { kind: 'ended', outcome };
        serving = await replaceAfterCut(run, serving);
        renewRetryAt = undefined;
        renewalFailures = 0;
        continue;
      }
      if (run.maxDurationReached()) return { kind: 'ended', outcome: { reason: 'max_duration' } };
      if (serving.mode === 'direct') act = undefined; // waitWhileLive stopped the monitor
      const next = await renew(run, serving, act);
      if (next) {
        act = undefined; // handed over (relay) or replaced (direct)
        return { kind: 'renewed', next };
      }
      renewRetryAt = Date.now() + renewalRetryDelay(run, serving, ++renewalFailures);
    }
  } finally {
    // Leaving live any other way (end, maxDuration, a failure): the relay ends the call as it stops.
    if (act && !act.settled()) await wf.CancellationScope.nonCancellable(() => act!.stop());
  }
}

/** The next moment live must act on: maxDuration, or the renewal (or its retry). */
function nextDeadline(run: SessionRun, serving: Serving, renewRetryAt: number | undefined): number {
  const renewal = renewRetryAt ?? (run.timing.sessionCapSeconds > 0 ? run.capEnd(serving) - run.renewalLeadMs() : Infinity);
  return Math.min(run.maxDurationEnd() ?? Infinity, renewal);
}

/** A failed renewal is tried again soon (the old session still serves), backing off to 30 s, never past the cap. */
function renewalRetryDelay(run: SessionRun, serving: Serving, failures: number): number {
  const capLeft = run.capEnd(serving) - 5000 - Date.now();
  return Math.max(1000, Math.min(30_000, 5000 * 2 ** (failures - 1), capLeft));
}

/**
 * Waits until the serving activity returns (false) or `deadline()` passes (true; read once live). The phase turns live
 * here: at once in direct mode, when the relay reports the avatar published in relay mode. Direct
 * mode's monitor is stopped when due; the relay goes on serving while a renewal gets the next session.
 */
async function waitWhileLive(run: SessionRun, serving: Serving, act: ServingActivity, deadline: () => number): Promise<boolean> {
  const stopped = () => act.settled() || run.ending || run.avatarDeparted(serving);
  if (run.state.phase !== 'live') {
    await untilBridged(run, serving, stopped);
    if (!stopped()) run.wentLive(serving);
  }
  const until = deadline();
  const due = until === Infinity ? (await run.waitFor(stopped), false) : !(await run.waitFor(stopped, Math.max(1, until - Date.now())));
  if (!act.settled() && (run.ending || serving.mode === 'direct')) await act.stop();
  if (run.avatarDeparted(serving) && !run.ending) {
    act.outcome ??= { reason: 'avatar_left' }; // LiveKit said so first: the monitor's word is not needed
    return false;
  }
  if (run.ending) throw new EndRequested();
  return due;
}

/**
 * Relay: waits for the relay's report that the avatar is published in the customer's room. The report
 * is a signal (repeated until Temporal takes it); when none came for a while, LiveKit is asked whether
 * the bridge publishes video (then the session is live). A relay that cannot bridge ends its activity
 * (its own deadlines), which stops the wait.
 */
async function untilBridged(run: SessionRun, serving: Serving, stopped: () => boolean): Promise<void> {
  const bridged = () => stopped() || serving.mode === 'direct' || run.bridgedRunwaySessionId === serving.id;
  if (bridged()) return; // direct mode, or reported already: no timer
  const reportWaitMs = Math.max(30, run.timing.avatarJoinTimeoutSeconds) * 1000;
  while (!(await run.waitFor(bridged, reportWaitMs))) {
    try {
      await run.untilEnd(() =>
        run.acts.waitForAvatarInRoom({ roomName: run.room, avatarIdentity: run.bridgeIdentity, timeoutSeconds: run.timing.avatarJoinTimeoutSeconds }),
      );
    } catch (err) {
      if (failureType(err) !== 'avatar_not_joined') throw err;
      continue; // not published yet: the relay is still at it, or ends with its own failure
    }
    if (!bridged())
      run.event('bridge_unconfirmed', `no report from the relay of Runway session ${serving.id}, but LiveKit shows ${run.bridgeIdentity} publishing: live`);
    return;
  }
}

/** Fresh relays for one Runway session whose room was empty while Runway said it runs, before the session fails. */
const RELAY_RESTARTS = 3;
const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'NOT_FOUND']);

/**
 * Relay: the relay found nobody in Runway's room (no avatar, no video). Runway's status decides: its
 * session is over (then this is Runway's end, as if the relay had seen the avatar leave: outcomeOf
 * reads it, and a cut at the cap is replaced), or its avatar is late or rejoining (a fresh relay, a
 * few times). True: relay again.
 */
async function relayAgain(run: SessionRun, serving: Serving, act: ServingActivity): Promise<boolean> {
  if (act.outcome || failureType(act.failure) !== 'relay_source_gone') return false;
  const status = await run.acts.getRunwaySessionStatus({ runwaySessionId: serving.id });
  if (ENDED.has(status.status)) {
    act.failure = undefined;
    act.outcome = { reason: 'runway_ended', status: status.status, ...(status.failureCode ? { failureCode: status.failureCode } : {}) };
    return false;
  }
  const tries = (run.relayRestarts.get(serving.id) ?? 0) + 1;
  run.relayRestarts.set(serving.id, tries);
  if (tries > RELAY_RESTARTS) {
    act.failure = sessionFailure(
      'relay_stalled',
      `nobody in Runway's room for Runway session ${serving.id} although Runway says ${status.status} (${tries} relays)`,
    );
    return false;
  }
  run.event('relay_restarted', `nobody in Runway's room for Runway session ${serving.id} (Runway says ${status.status}): relaying again`);
  return true;
}

/** What a finished serving activity (or LiveKit's word that the avatar left) means for the conversation. */
async function outcomeOf(run: SessionRun, serving: Serving, act: ServingActivity): Promise<Outcome> {
  const end = act.outcome;
  if (!end && act.failure !== undefined && !isCancellation(act.failure)) throw act.failure;
  if (!end) throw new EndRequested();
  if (end.reason === 'room_closed') return { reason: 'room_closed' };
  // Runway ended the session, or its avatar left: read the status and surface its failureCode.
  const status =
    end.status && end.status !== 'RUNNING' && end.status !== 'READY' ? end : await run.acts.getRunwaySessionStatus({ runwaySessionId: serving.id });
  run.event('runway_ended', `Runway session ${serving.id} ended while live: ${status.status}${status.failureCode ? ` (${status.failureCode})` : ''}`);
  if (status.status === 'FAILED') {
    return {
      reason: 'runway_ended',
      error: { code: status.failureCode ?? 'runway_failed', message: `Runway session failed: ${status.failureCode ?? 'unknown'}` },
    };
  }
  return { reason: 'runway_ended' };
}

/** Runway ended the session at its runtime cap (not a failure) while the conversation goes on. */
function cutAtCapWhileGoingOn(run: SessionRun, outcome: Outcome, serving: Serving): boolean {
  const cap = run.timing.sessionCapSeconds;
  return outcome.reason === 'runway_ended' && !outcome.error && cap > 0 && Date.now() - serving.liveSince >= cap * 900 && !run.maxDurationReached();
}

/** The cap cut the session before its replacement was ready: end what is left of it, bring a new one up. */
async function replaceAfterCut(run: SessionRun, serving: Serving): Promise<Serving> {
  run.event('avatar_gap', `Runway session ${serving.id} was cut at the runtime cap before its replacement was ready; replacing it now`);
  run.flag('avatar_gap');
  await endRunwaySession(run, serving.id, undefined);
  await releaseExtraSlot(run);
  run.capacityWaitedMs = 0; // a bring-up of its own: a full capacity wait (in a continued run too)
  return await bringUp(run, serving.mode);
}
