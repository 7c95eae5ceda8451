// Bring-up: from nothing to an avatar in the customer's room. Admission and create
// (workflows/session/create.ts), wait until READY, then direct (Runway's avatar joins the customer's
// room) or relay (consume; the relay starts when live). A READY session that expired, or a consume
// that came too late, is ended and replaced. Fallback from direct to relay lives here and nowhere else.
import type { BridgeMode } from '../types';
import { createRunwaySession } from './create';
import { failureMessage, failureType } from './failures';
import type { Serving, SessionRun } from './run';
import { endRunwaySession } from './teardown';

/**
 * Where Runway's runtime cap starts counting for a direct avatar: its join time in the customer's
 * room when that is sane (not in the future, not before a long outage's worth), else now.
 */
export function capClockStart(joinedAtMs: number | undefined): number {
  const now = Date.now();
  return joinedAtMs !== undefined && joinedAtMs <= now && now - joinedAtMs < 10 * 60_000 ? joinedAtMs : now;
}

/** What to do after one attempt: serve this session, or try again (in `mode`). */
type Attempt = { serving: Serving } | { retry: BridgeMode };

export async function bringUp(run: SessionRun, mode: BridgeMode = run.requestedMode === 'relay' ? 'relay' : 'direct'): Promise<Serving> {
  for (;;) {
    run.throwIfEnding();
    const attempt = await bringUpOnce(run, mode);
    if ('serving' in attempt) return attempt.serving;
    mode = attempt.retry;
  }
}

async function bringUpOnce(run: SessionRun, mode: BridgeMode): Promise<Attempt> {
  run.setMode(mode);
  const startedAt = Date.now();
  let id: string;
  try {
    id = await createRunwaySession(run, mode);
  } catch (err) {
    if (failureType(err) === 'integration_unsupported' && canFallBack(run, mode)) {
      fallBackToRelay(run, `Runway rejected the LiveKit integration (${failureMessage(err)}); falling back to relay`);
      return { retry: 'relay' };
    }
    throw err;
  }
  run.throwIfEnding();
  run.setPhase('waiting_ready');
  try {
    await waitReady(run, id, mode);
  } catch (err) {
    if (failureType(err) !== 'session_expired') throw err;
    run.event('ready_expired', `${failureMessage(err)}; cancelling that session and creating a new one`);
    await endRunwaySession(run, id, mode);
    return { retry: mode };
  }
  return mode === 'direct' ? await joinDirect(run, id, startedAt) : await consumeForRelay(run, id, startedAt);
}

/**
 * How long the first READY polls run inside the workflow task before a regular activity takes over
 * (short: queries and signals wait while a local activity holds the workflow task).
 */
const READY_SOON_SECONDS = 1.5;

/**
 * Waits until the Runway session is READY (direct mode: or already RUNNING, its avatar joining): a
 * quick local check first, then, for a session still provisioning or queued, a heartbeating activity.
 */
export async function waitReady(run: SessionRun, runwaySessionId: string, mode: BridgeMode): Promise<void> {
  const req = { runwaySessionId, deadlineSeconds: run.timing.readyDeadlineSeconds, acceptRunning: mode === 'direct' };
  const soon = await run.untilEnd(() => run.acts.checkReadySoon({ ...req, windowSeconds: READY_SOON_SECONDS }));
  if ('ready' in soon) await run.untilEnd(() => run.acts.waitUntilReady({ ...req, progress: soon.progress }));
}

function canFallBack(run: SessionRun, mode: BridgeMode): boolean {
  return run.requestedMode === 'auto' && mode === 'direct';
}

function fallBackToRelay(run: SessionRun, message: string): void {
  run.event('fallback_to_relay', message);
  run.flag('fallback_to_relay');
}

/** Direct: wait until Runway's avatar is in the customer's room publishing video. */
async function joinDirect(run: SessionRun, id: string, startedAt: number): Promise<Attempt> {
  run.setPhase('bridging');
  const avatarIdentity = run.avatarIdentityOf.get(id) ?? run.directAvatarIdentity;
  try {
    const { sid, joinedAtMs } = await run.untilEnd(() =>
      run.acts.waitForAvatarInRoom({
        roomName: run.room,
        avatarIdentity,
        timeoutSeconds: run.timing.avatarJoinTimeoutSeconds,
      }),
    );
    run.ownAvatar(sid);
    run.state.avatarIdentity = avatarIdentity;
    run.provisioned(startedAt);
    return { serving: { id, mode: 'direct', avatarSid: sid, avatarIdentity, liveSince: capClockStart(joinedAtMs) } };
  } catch (err) {
    if (failureType(err) !== 'avatar_not_joined' || !canFallBack(run, 'direct')) throw err;
    fallBackToRelay(run, `${failureMessage(err)}; cancelling that session and falling back to relay`);
    await endRunwaySession(run, id, 'direct');
    return { retry: 'relay' };
  }
}

/** Relay: consume Runway's room credentials (sealed); the relay itself starts when live. */
async function consumeForRelay(run: SessionRun, id: string, startedAt: number): Promise<Attempt> {
  run.setPhase('consuming');
  try {
    const { sealedCredentials } = await run.untilEnd(() => run.acts.consumeRunwaySession({ runwaySessionId: id }));
    run.setPhase('bridging');
    run.state.avatarIdentity = run.bridgeIdentity;
    return { serving: { id, mode: 'relay', sealedCredentials, liveSince: Date.now(), startedAt } };
  } catch (err) {
    const type = failureType(err);
    if (type !== 'session_expired' && type !== 'already_consumed' && type !== 'not_ready') throw err;
    run.event('consume_failed', `${failureMessage(err)}; cancelling that session and creating a new one`);
    await endRunwaySession(run, id, 'relay');
    return { retry: 'relay' };
  }
}
