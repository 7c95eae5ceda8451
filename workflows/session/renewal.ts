// Renewal: Runway cuts every session at about five minutes, so the next Runway session is made READY
// ahead of the cap (with a second admission slot: the two overlap briefly), brought in the mode's way,
// and the old one ended; the driver then continues as new so a long conversation's history stays small.
// Direct: the new avatar joins under the same identity (LiveKit swaps the participant), unless a lost
// create used that identity up (then under the next one: workflows/shared.ts directAvatarIdentity). Relay: the new
// session is consumed while the relay keeps serving, then the relay switches its source room.
import { isCancellation } from '@temporalio/workflow';
import { acquireSlot, releaseExtraSlot } from './admission';
import { capClockStart, waitReady } from './bring-up';
import { createRunwaySession, type CurrentTurns } from './create';
import { EndRequested, failureMessage } from './failures';
import type { Serving, SessionRun } from './run';
import { relayQueueOf, type ServingActivity } from './serving-activity';
import { endRunwaySession } from './teardown';

/**
 * The next Runway session, serving; undefined when it could not be had yet (the current avatar
 * stays, the caller retries). `act` is the relay (relay mode) that keeps serving meanwhile.
 */
export async function renew(run: SessionRun, serving: Serving, act: ServingActivity | undefined): Promise<Serving | undefined> {
  run.event('renewing', `renewing Runway session ${serving.id} ahead of the ${run.timing.sessionCapSeconds} s cap`);
  const startedAt = Date.now();
  let id: string | undefined;
  try {
    await acquireSlot(run, { extra: true, deadline: run.capEnd(serving) });
    id = await createRunwaySession(run, serving.mode, { renewal: true, current: await relayedTurns(run, serving) });
    await waitReady(run, id, serving.mode);
    const next = serving.mode === 'direct' ? await directTakeOver(run, serving, id) : await relaySwitch(run, serving, id, act!);
    run.provisioned(startedAt);
    await endRunwaySession(run, serving.id, undefined);
    await releaseExtraSlot(run);
    run.renewed();
    run.event('renewed', `Runway session ${id} took over from ${serving.id} after ${Date.now() - startedAt} ms`);
    return next;
  } catch (err) {
    if (err instanceof EndRequested || isCancellation(err)) throw err;
    run.event('renewal_failed', `could not renew Runway session ${serving.id} yet: ${failureMessage(err)}; the current avatar stays and renewal is retried`);
    run.flag('renewal_failed');
    if (id !== undefined && id !== serving.id) await endRunwaySession(run, id, undefined);
    // The extra slot (held or still asked for) is kept for the next attempt: releasing and asking
    // again on every retry flooded admission control with signals at scale.
    return undefined;
  }
}

/**
 * Relay: what the relay saw said in the current session (Runway's transcript segments on the data
 * channel), for the next session's context; undefined when it cannot be had (the create then reads
 * Runway's conversation endpoint). A side dependency: never fails the renewal.
 */
async function relayedTurns(run: SessionRun, serving: Serving): Promise<CurrentTurns | undefined> {
  const queue = serving.mode === 'relay' ? relayQueueOf(run, serving) : undefined;
  if (!queue) return undefined;
  try {
    const { turns } = await run.untilEnd(() => run.acts.relayTranscript(queue, { conversationId: run.input.conversationId, runwaySessionId: serving.id }));
    return { runwaySessionId: serving.id, turns };
  } catch (err) {
    if (err instanceof EndRequested || isCancellation(err)) throw err;
    return undefined;
  }
}

/**
 * Direct: the new avatar joins with the same identity. The old avatar lost its identity to it, so
 * END_CALL by identity would reach the new one: the old session ends by Runway (it lost its room) or
 * is cancelled after the grace.
 */
async function directTakeOver(run: SessionRun, serving: Serving, id: string): Promise<Serving> {
  const avatarIdentity = run.avatarIdentityOf.get(id) ?? run.directAvatarIdentity;
  const { sid, joinedAtMs } = await run.untilEnd(() =>
    run.acts.waitForAvatarInRoom({
      roomName: run.room,
      avatarIdentity,
      timeoutSeconds: run.timing.avatarJoinTimeoutSeconds,
      excludeSid: serving.avatarSid,
    }),
  );
  run.ownAvatar(sid);
  if (run.state.avatarIdentity !== avatarIdentity) {
    // Only after a lost create used the identity up (a ghost may hold it): the agent must address this one now.
    run.event(
      'avatar_identity_changed',
      `the avatar is now ${avatarIdentity} in ${run.room} (${run.state.avatarIdentity} was used by a create whose answer was lost)`,
    );
    run.state.avatarIdentity = avatarIdentity;
  }
  return { id, mode: 'direct', avatarSid: sid, avatarIdentity, liveSince: capClockStart(joinedAtMs) };
}

/**
 * Relay: consume the new session while the relay serves the current one, then switch the relay's
 * source room on the media worker holding it (its tracks in the customer's room stay published);
 * the relay is handed over to the next run. If it cannot switch, the next run relays afresh.
 */
async function relaySwitch(run: SessionRun, serving: Serving, id: string, act: ServingActivity): Promise<Serving> {
  const { sealedCredentials } = await run.untilEnd(() => run.acts.consumeRunwaySession({ runwaySessionId: id }));
  const next: Serving = { id, mode: 'relay', sealedCredentials, liveSince: Date.now() };
  const queue = relayQueueOf(run, serving);
  if (act.settled()) {
    run.event('avatar_gap', `the relay of Runway session ${serving.id} ended before its replacement was ready; relaying ${id} afresh`);
    run.flag('avatar_gap');
  } else if (!queue) {
    run.event('relay_switch_failed', `no media worker is known to hold the relay right now; Runway session ${id} will be relayed afresh`);
    run.flag('relay_switch_failed');
  } else {
    try {
      const { gapMs } = await run.untilEnd(() =>
        run.acts.switchRelaySource(queue, {
          conversationId: run.input.conversationId,
          fromRunwaySessionId: serving.id,
          runwaySessionId: id,
          sealedCredentials,
          timeoutSeconds: run.timing.avatarJoinTimeoutSeconds,
        }),
      );
      next.relayQueue = queue;
      // The relay activity returns 'handed_over' right after the switch (the relay stays, parked).
      await run.waitFor(act.settled, run.timing.heartbeatTimeoutSeconds * 1000);
      run.event('relay_switched', `the relay switched to Runway session ${id} (longest pause between forwarded frames ${gapMs} ms)`);
    } catch (err) {
      if (err instanceof EndRequested || isCancellation(err)) throw err;
      run.event('relay_switch_failed', `the relay could not switch to Runway session ${id} (${failureMessage(err)}); it will be relayed afresh`);
      run.flag('relay_switch_failed');
    }
  }
  // Not switched: the relay sends END_CALL to the old session as it leaves.
  await act.stop();
  return next;
}
