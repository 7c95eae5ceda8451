// Ending things. `endRunwaySession` ends one Runway session now (bring-up and renewal use it for the
// sessions they replace); `teardown` runs when the conversation is over, never cancelled: END_CALL and
// cancel of every Runway session still owned, removal of this service's participants from the
// customer's room, release of admission slots. Each step runs on its own: one failing never skips another.
import * as wf from '@temporalio/workflow';
import type { BridgeMode } from '../types';
import { failureMessage } from './failures';
import type { SessionRun } from './run';

/** Ends one Runway session (END_CALL to a direct avatar first), whatever the workflow is doing. */
export async function endRunwaySession(run: SessionRun, runwaySessionId: string, mode: BridgeMode | undefined): Promise<void> {
  await wf.CancellationScope.nonCancellable(async () => {
    if (mode === 'direct') {
      const avatarIdentity = run.avatarIdentityOf.get(runwaySessionId) ?? run.state.avatarIdentity ?? run.directAvatarIdentity;
      await run.acts.sendEndCallToAvatar({ roomName: run.room, avatarIdentity }).catch(() => undefined);
    }
    const { finalStatus, cancelled } = await run.acts.endRunwaySession({ runwaySessionId, graceSeconds: run.timing.endCallGraceSeconds });
    run.ownedRunwaySessionIds.delete(runwaySessionId);
    run.unbilled.push(runwaySessionId); // its billed seconds are read later (workflows/session/billing.ts)
    run.event('runway_session_ended', `Runway session ${runwaySessionId} ended: ${finalStatus}${cancelled ? ' (cancelled)' : ''}`);
  });
}

/** Runs one teardown step; a failure is recorded and the next step runs anyway. */
async function step(run: SessionRun, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    run.event('teardown_step_failed', `${what} failed: ${failureMessage(err)}`);
    run.flag('teardown_incomplete');
  }
}

export async function teardown(run: SessionRun): Promise<void> {
  await wf.CancellationScope.nonCancellable(async () => {
    run.setPhase('tearing_down');
    run.publish(); // visible if a step keeps failing (local activities back off with timers)
    for (const id of [...run.ownedRunwaySessionIds]) {
      await step(run, `ending Runway session ${id}`, () => endRunwaySession(run, id, run.state.mode));
    }
    // The slots go back as soon as the Runway sessions have ended: a waiting session need not wait
    // for the rest of this teardown.
    for (const requestId of run.slotRequests.splice(0)) {
      await step(run, 'releasing the admission slot', () => run.acts.releaseAdmission({ requestId }));
    }
    await step(run, 'removing participants', async () => {
      const { removed } = await run.acts.removeServiceParticipants({ roomName: run.room, identities: [run.bridgeIdentity, ...run.avatarIdentities()] });
      if (removed.length) run.event('participants_removed', `removed ${removed.join(', ')} from ${run.room}`);
    });
  });
}
