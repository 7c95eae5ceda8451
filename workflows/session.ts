// What happens in a session, top to bottom: validate → create a Runway session → wait until READY →
// bridge it into the customer's LiveKit room (direct: Runway joins the room; relay: consume and relay
// the media) → live until ended, renewing the Runway session ahead of its runtime cap (then continuing
// as new) → tear everything down, always, whatever failed.
import * as wf from '@temporalio/workflow';
import { ApplicationFailure, ActivityFailure, TimeoutFailure, isCancellation } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { MediaActivities, SessionActivities } from '../activities';
import { InvalidInputError, resolveTiming, runwayMaxDuration, validateSessionInput } from './input';
import {
  EndReasonKey, FlagsKey, LiveKitRoomKey, MEDIA_TASK_QUEUE, ModeKey, PhaseKey, RunwaySessionIdKey, RunwaySessionIdsKey,
  bridgeIdentity, directAvatarIdentity, endSignal, relayBridgedSignal, slotGrantedSignal, stateQuery, waitLiveUpdate,
} from './shared';
import { NON_RETRYABLE_KINDS, type BridgeMode, type EndReason, type LiveInfo, type SessionInput, type SessionPhase, type SessionState, type SessionTiming } from './types';

/**
 * Patch: a renewal keeps its extra slot across retries (which back off to 30 s) and releases it
 * before continuing as new. Runs started earlier replay the old way.
 */
const RENEWAL_SLOT_KEPT = 'renewal-slot-kept';

/**
 * Patch: the runtime cap is counted from the avatar's join (direct, by the LiveKit server) or the
 * consume (relay), not from when the workflow first saw the session live.
 */
const CAP_CLOCK_KEPT = 'cap-clock-kept';

/**
 * Where Runway's runtime cap starts counting for a direct avatar: its join time in the customer's
 * room when that is sane (not in the future, not before a long outage's worth), else now.
 */
function capClockStart(joinedAtMs: number | undefined): number {
  const now = Date.now();
  return joinedAtMs !== undefined && joinedAtMs <= now && now - joinedAtMs < 10 * 60_000 ? joinedAtMs : now;
}

/** Thrown inside the lifecycle when `end` arrives; caught below, never escapes the workflow. */
class EndRequested extends Error {}

/** A failure of the session itself (as opposed to an activity's transient error). */
function sessionFailure(code: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: code, message, nonRetryable: true });
}

/** The Runway session currently serving the conversation. */
interface Current {
  id: string;
  mode: BridgeMode;
  /** When this Runway session's avatar went live (for the runtime cap). */
  liveSince: number;
  /** Direct mode: the avatar participant's sid (a renewal waits for a different one). */
  avatarSid?: string;
  /** Relay mode: Runway's room credentials, sealed. */
  sealedCredentials?: string;
  /** Relay mode: when bring-up started (provisioning time is measured at bridged). */
  startedAt?: number;
  /** Relay mode: the task queue of the media worker holding the relay (a renewal hands it over there). */
  relayQueue?: string;
}

/** What a run hands to the next one when it continues as new after a renewal. */
export interface CarriedSession {
  state: SessionState;
  flags: string[];
  slots: string[];
  provisioningMs: number[];
  conversationLiveSince?: number;
  endRequested?: string;
  current: Current;
}

export async function avatarSession(rawInput: SessionInput, carried?: CarriedSession): Promise<SessionState> {
  // ---- Input -------------------------------------------------------------------------------------
  let input: SessionInput;
  try {
    input = validateSessionInput(rawInput);
  } catch (err) {
    const message = err instanceof InvalidInputError ? err.message : String(err);
    throw ApplicationFailure.create({ type: 'invalid_input', message, nonRetryable: true });
  }
  const timing = resolveTiming(input);
  const acts = activityProxies(timing);
  const room = input.livekit.roomName;

  // ---- State, visible through the `state` query and search attributes --------------------------
  const state: SessionState = carried?.state ?? {
    conversationId: input.conversationId,
    phase: 'creating',
    requestedMode: input.mode ?? 'auto',
    runwaySessionIds: [],
    roomName: room,
    ...(input.livekit.endUserIdentity ? { endUserIdentity: input.livekit.endUserIdentity } : {}),
    phaseTimes: {},
    ambiguousCreates: [],
    events: [],
  };
  const now = () => new Date(Date.now()).toISOString();
  const flags = new Set<string>(carried?.flags ?? []);
  const flag = (f: string) => {
    metrics.flags.add(1, { flag: f });
    flags.add(f);
    wf.upsertSearchAttributes([{ key: FlagsKey, value: [...flags] }]);
  };
  const event = (type: string, message: string) => {
    state.events.push({ at: now(), type, message });
    if (state.events.length > 50) state.events.splice(0, state.events.length - 50);
    wf.log.info(message, { event: type, conversationId: input.conversationId });
  };
  // Metrics (Temporal's metric meter: exported by the worker runtime, silent during replay).
  const metrics = {
    phaseSeconds: wf.metricMeter.createHistogram('avatar_session_phase_seconds', 'float', 's', 'Time a session spent in each phase'),
    phases: wf.metricMeter.createCounter('avatar_session_phase_entered', 'sessions', 'Sessions entering each phase'),
    ended: wf.metricMeter.createCounter('avatar_sessions_ended', 'sessions', 'Sessions ended, by end reason'),
    flags: wf.metricMeter.createCounter('avatar_session_flags', 'events', 'Fallbacks to relay, ambiguous creates, failed renewals'),
    renewals: wf.metricMeter.createCounter('avatar_session_renewals', 'renewals', 'Runway sessions renewed ahead of the runtime cap'),
  };
  let phaseSince = Date.now();
  const setPhase = (phase: SessionPhase) => {
    if (state.phase !== phase || !state.phaseTimes[phase]) {
      if (state.phaseTimes[state.phase]) metrics.phaseSeconds.record((Date.now() - phaseSince) / 1000, { phase: state.phase });
      metrics.phases.add(1, { phase });
      phaseSince = Date.now();
    }
    state.phase = phase;
    state.phaseTimes[phase] = now();
    wf.upsertSearchAttributes([{ key: PhaseKey, value: phase }]);
  };
  const setMode = (mode: BridgeMode) => {
    state.mode = mode;
    wf.upsertSearchAttributes([{ key: ModeKey, value: mode }]);
  };
  wf.upsertSearchAttributes([{ key: LiveKitRoomKey, value: room }]);
  if (!carried) setPhase('creating');
  const carriedMode = carried?.current.mode;
  const provisioningMs: number[] = carried?.provisioningMs ?? [];
  let conversationLiveSince: number | undefined = carried?.conversationLiveSince;

  // ---- Messages ----------------------------------------------------------------------------------
  let endRequested: string | undefined = carried?.endRequested;
  let relayBridged: string | undefined;
  wf.setHandler(stateQuery, () => state);
  wf.setHandler(endSignal, (reason) => {
    if (endRequested !== undefined) return;
    endRequested = reason ?? 'requested';
    event('end_requested', `end requested: ${endRequested}`);
  });
  const grants = new Set<string>();
  wf.setHandler(slotGrantedSignal, ({ requestId }) => void grants.add(requestId));
  /** Which media worker queue holds the relay of each Runway session (reported by the relay). */
  const relayQueues = new Map<string, string>();
  wf.setHandler(relayBridgedSignal, ({ runwaySessionId, workerQueue }) => {
    if (workerQueue) relayQueues.set(runwaySessionId, workerQueue);
    if (runwaySessionId === state.runwaySessionId) relayBridged = runwaySessionId;
  });
  const isOver = () => state.phase === 'tearing_down' || state.phase === 'completed' || state.phase === 'failed';
  wf.setHandler(waitLiveUpdate, async (): Promise<LiveInfo> => {
    await wf.condition(() => state.phase === 'live' || isOver());
    if (state.phase === 'live' && state.mode && state.runwaySessionId && state.avatarIdentity) {
      return {
        conversationId: state.conversationId,
        roomName: room,
        mode: state.mode,
        runwaySessionId: state.runwaySessionId,
        avatarIdentity: state.avatarIdentity,
        ...(state.mode === 'direct' ? { audioStreamTopic: 'lk.audio_stream' } : {}),
      };
    }
    throw ApplicationFailure.create({
      type: state.error?.code ?? 'not_live',
      message: state.error?.message ?? `session ended before it was live (${state.endReason ?? 'ended'})`,
      nonRetryable: true,
    });
  });

  // ---- Runway sessions this workflow owns: every one is ended in teardown ----------------------
  const open = new Set<string>(carried ? [carried.current.id] : []);
  const directAvatar = directAvatarIdentity(input.conversationId);
  const bridge = bridgeIdentity(input.conversationId);

  /** Runs one cancellable step of the lifecycle; `end` cancels it and turns into EndRequested. */
  async function step<T>(fn: () => Promise<T>): Promise<T> {
    if (endRequested !== undefined) throw new EndRequested();
    const scope = new wf.CancellationScope();
    // A watcher that cancels the step on `end`; it is itself cancelled when the step settles (or the
    // workflow is cancelled), and its rejection is handled: an unhandled one fails the workflow task.
    const watcher = new wf.CancellationScope();
    watcher.run(() => wf.condition(() => endRequested !== undefined)).then(() => scope.cancel(), () => undefined);
    try {
      return await scope.run(fn);
    } catch (err) {
      if (endRequested !== undefined && isCancellation(err)) throw new EndRequested();
      throw err;
    } finally {
      watcher.cancel();
    }
  }

  /** Ends one Runway session now (END_CALL in direct mode first), whatever the workflow is doing. */
  async function endRunwaySession(id: string, mode: BridgeMode | undefined): Promise<void> {
    await wf.CancellationScope.nonCancellable(async () => {
      if (mode === 'direct') {
        await acts.endCall.sendEndCallToAvatar({ roomName: room, avatarIdentity: directAvatar }).catch(() => undefined);
      }
      const { finalStatus, cancelled } = await acts.teardown.endRunwaySession({ runwaySessionId: id, graceSeconds: timing.endCallGraceSeconds });
      open.delete(id);
      event('runway_session_ended', `Runway session ${id} ended: ${finalStatus}${cancelled ? ' (cancelled)' : ''}`);
    });
  }

  /** Slots held with admission control (released in teardown). */
  const slots: string[] = carried?.slots ?? [];
  let capacityDeadline: number | undefined;

  /**
   * Waits for a Runway session slot from admission control, first come first served. A renewal asks
   * for an extra slot (two sessions overlap briefly) without leaving the live phase.
   */
  async function acquireSlot(opts: { extra?: boolean; deadline?: number } = {}): Promise<void> {
    let requestId: string;
    if (slots.length >= (opts.extra ? 2 : 1)) {
      // A renewal's extra slot is kept across its retries: still waiting for that one, keep its place in line.
      if (!opts.extra || grants.has(slots[1]!)) return;
      requestId = slots[1]!;
    } else {
      requestId = wf.uuid4();
      if (!opts.extra) setPhase('waiting_capacity');
      slots.push(requestId); // before asking: teardown releases it whatever happens next
      await acts.admission.requestAdmission({ requestId, holder: wf.workflowInfo().workflowId, at: now() });
    }
    const deadline = opts.deadline ?? (capacityDeadline ??= Date.now() + timing.capacityWaitSeconds * 1000);
    const granted = await wf.condition(() => grants.has(requestId) || endRequested !== undefined, Math.max(1, deadline - Date.now()));
    if (endRequested !== undefined) throw new EndRequested();
    if (!granted) throw sessionFailure('capacity_timeout', `no Runway session slot became free in time (account limit reached)`);
    event('slot_granted', 'Runway session slot granted');
  }

  /** Gives back a renewal's extra slot. Awaited where the run may continue as new right after. */
  async function releaseExtraSlot(): Promise<void> {
    const releases: Promise<unknown>[] = [];
    while (slots.length > 1) {
      const requestId = slots.pop()!;
      releases.push(wf.CancellationScope.nonCancellable(() => acts.teardown.releaseAdmission({ requestId })).catch(() => undefined));
    }
    await Promise.all(releases);
  }

  /** Creates a Runway session. An ambiguous create is recorded for the reaper before trying again. */
  async function createRunwaySession(mode: BridgeMode, opts: { renewal?: boolean } = {}): Promise<string> {
    let limitedWaitMs = 1000;
    let transientFailures = 0;
    const attemptsBefore = state.runwaySessionIds.length + state.ambiguousCreates.length;
    for (;;) {
      // Bounded per bring-up (expiry, failed joins, lost answers), not per conversation: renewals add sessions.
      if (state.runwaySessionIds.length + state.ambiguousCreates.length - attemptsBefore >= timing.maxCreateAttempts) {
        throw sessionFailure('create_attempts_exhausted', `gave up after ${timing.maxCreateAttempts} Runway session attempts`);
      }
      if (!opts.renewal) {
        await acquireSlot();
        setPhase('creating');
      }
      const attemptAt = now();
      try {
        // Not cancellable: a create in flight must be allowed to return its id so teardown can end it.
        // One attempt per activity (no Temporal retry): a create whose worker died may have reached
        // Runway, and only the workflow can record that for the reaper; transient errors are retried below.
        const { runwaySessionId } = await wf.CancellationScope.nonCancellable(() =>
          acts.create.createRunwaySession({
            conversationId: input.conversationId,
            avatar: input.avatar,
            maxDuration: runwayMaxDuration(input),
            personality: input.personality,
            startScript: input.startScript,
            tools: input.tools,
            ...(mode === 'direct'
              ? { direct: { roomName: room, avatarIdentity: directAvatar, agentIdentity: input.livekit.agentIdentity, tokenTtlSeconds: tokenTtl() } }
              : {}),
          }),
        );
        open.add(runwaySessionId);
        state.runwaySessionId = runwaySessionId;
        state.runwaySessionIds.push(runwaySessionId);
        wf.upsertSearchAttributes([
          { key: RunwaySessionIdKey, value: runwaySessionId },
          { key: RunwaySessionIdsKey, value: [...state.runwaySessionIds] },
        ]);
        event('runway_session_created', `Runway session ${runwaySessionId} created (${mode})`);
        return runwaySessionId;
      } catch (err) {
        if (failureType(err) === 'concurrency_limited') {
          // Runway counts more sessions than we do (another client on the account): wait, then try again.
          if (opts.renewal) throw err;
          setPhase('waiting_capacity');
          event('concurrency_limited', `Runway refused: ${failureMessage(err)}; waiting for capacity`);
          if (capacityDeadline !== undefined && Date.now() + limitedWaitMs > capacityDeadline) {
            throw sessionFailure('capacity_timeout', `Runway kept refusing new sessions for ${timing.capacityWaitSeconds} s: ${failureMessage(err)}`);
          }
          await step(() => wf.sleep(limitedWaitMs));
          limitedWaitMs = Math.min(30_000, limitedWaitMs * 2);
          continue;
        }
        const lost = failureType(err) === 'ambiguous' || (timedOut(err) && wf.patched('create-retries-in-workflow'));
        if (!lost) {
          // A clean transient failure (5xx, 429, a reset before sending): Runway created nothing; try again.
          if (isTransient(err) && transientFailures < 5 && wf.patched('create-retries-in-workflow')) {
            transientFailures++;
            const delay = retryDelayOf(err) ?? Math.min(10_000, 1000 * 2 ** (transientFailures - 1));
            event('create_retry', `create failed (${failureMessage(err)}); trying again in ${delay} ms`);
            await step(() => wf.sleep(delay));
            continue;
          }
          throw err;
        }
        state.ambiguousCreates.push({ at: attemptAt, avatar: input.avatar });
        flag('ambiguous_create');
        event('ambiguous_create', `create answer was lost (${failureMessage(err)}): a Runway session may exist; recorded for the reaper, creating again`);
      }
    }
  }

  function tokenTtl(): number {
    return Math.min(6 * 3600, (input.maxDurationSeconds ?? 1800) + 600);
  }

  // ---- The lifecycle -----------------------------------------------------------------------------
  type Outcome = { reason: EndReason; error?: { code: string; message: string } };

  /** Brings one Runway session up to the point where its avatar is in the customer's room. */
  async function bringUp(): Promise<Current> {
    let mode: BridgeMode = carriedMode ?? (input.mode === 'relay' ? 'relay' : 'direct');
    for (;;) {
      if (endRequested !== undefined) throw new EndRequested();
      setMode(mode);
      const startedAt = Date.now();
      let id: string;
      try {
        id = await createRunwaySession(mode);
      } catch (err) {
        if (failureType(err) === 'integration_unsupported' && input.mode === 'auto' && mode === 'direct') {
          event('fallback_to_relay', `Runway rejected the LiveKit integration (${failureMessage(err)}); falling back to relay`);
          flag('fallback_to_relay');
          mode = 'relay';
          continue;
        }
        throw err;
      }
      if (endRequested !== undefined) throw new EndRequested();

      setPhase('waiting_ready');
      try {
        await step(() => acts.ready.waitUntilReady({ runwaySessionId: id, deadlineSeconds: timing.readyDeadlineSeconds, acceptRunning: mode === 'direct' }));
      } catch (err) {
        if (failureType(err) !== 'session_expired') throw err;
        event('ready_expired', `${failureMessage(err)}; cancelling that session and creating a new one`);
        await endRunwaySession(id, mode);
        continue;
      }

      if (mode === 'direct') {
        setPhase('bridging');
        try {
          const { sid, joinedAtMs } = await step(() => acts.ready.waitForAvatarInRoom({ roomName: room, avatarIdentity: directAvatar, timeoutSeconds: timing.avatarJoinTimeoutSeconds }));
          state.avatarIdentity = directAvatar;
          provisioned(startedAt);
          return { id, mode, avatarSid: sid, liveSince: capClockStart(joinedAtMs) };
        } catch (err) {
          if (failureType(err) === 'avatar_not_joined' && input.mode === 'auto') {
            event('fallback_to_relay', `${failureMessage(err)}; cancelling that session and falling back to relay`);
            flag('fallback_to_relay');
            await endRunwaySession(id, 'direct');
            mode = 'relay';
            continue;
          }
          throw err;
        }
      }

      // relay: consume Runway's room credentials (sealed); the relay itself starts when live.
      setPhase('consuming');
      try {
        const { sealedCredentials } = await step(() => acts.consume.consumeRunwaySession({ runwaySessionId: id }));
        setPhase('bridging');
        state.avatarIdentity = bridge;
        return { id, mode, sealedCredentials, liveSince: Date.now(), startedAt };
      } catch (err) {
        const type = failureType(err);
        if (type === 'session_expired' || type === 'already_consumed' || type === 'not_ready') {
          event('consume_failed', `${failureMessage(err)}; cancelling that session and creating a new one`);
          await endRunwaySession(id, 'relay');
          continue;
        }
        throw err;
      }
    }
  }

  /** When Runway's runtime cap cuts the current session. */
  const capEnd = (cur: Current): number => cur.liveSince + timing.sessionCapSeconds * 1000;

  /** Keeps a recent history of provisioning times: renewals start early enough to cover them. */
  function provisioned(startedAt: number): void {
    provisioningMs.push(Date.now() - startedAt);
    if (provisioningMs.length > 5) provisioningMs.shift();
  }
  function renewalLeadMs(): number {
    const worst = provisioningMs.length ? Math.max(...provisioningMs) : 10_000;
    return Math.min(timing.sessionCapSeconds * 500, Math.max(timing.renewalLeadSeconds * 1000, 2 * worst + 5000));
  }

  /** The live session's long activity (direct: a monitor; relay: the relay itself), running in its own scope. */
  interface LiveActivity {
    outcome?: { reason: string; status?: string; failureCode?: string };
    failure?: unknown;
    settled(): boolean;
    /** Cancels it if it still runs, and waits until it is done (the relay sends END_CALL, or hands over). */
    stop(): Promise<void>;
  }

  function startLiveActivity(cur: Current): LiveActivity {
    const scope = new wf.CancellationScope();
    const act: LiveActivity = {
      settled: () => act.outcome !== undefined || act.failure !== undefined,
      stop: async () => {
        if (!act.settled()) scope.cancel();
        await running;
      },
    };
    const running = scope.run((): Promise<{ reason: string; status?: string; failureCode?: string }> =>
      cur.mode === 'direct'
        ? acts.monitor.monitorDirectSession({ runwaySessionId: cur.id, roomName: room, avatarIdentity: directAvatar, intervalSeconds: timing.monitorIntervalSeconds })
        : relayMedia(cur),
    ).then((o) => void (act.outcome = o), (err) => void (act.failure = err));
    return act;
  }

  /**
   * Relays the current Runway session. After a renewal the relay was handed over inside the media
   * worker that holds it, so it is asked there first (it adopts the running relay: no new join); if that
   * worker is gone, any media worker starts the relay afresh.
   */
  async function relayMedia(cur: Current) {
    const req = {
      conversationId: input.conversationId,
      runwaySessionId: cur.id,
      sealedCredentials: cur.sealedCredentials!,
      roomName: room,
      bridgeIdentity: bridge,
      agentIdentity: input.livekit.agentIdentity,
      listenTo: input.livekit.listenTo,
      maxSeconds: input.maxDurationSeconds ?? 24 * 3600,
    };
    const queue = relayQueues.get(cur.id) ?? cur.relayQueue;
    if (queue) {
      try {
        return await acts.pinnedMedia(queue).relayMedia(req);
      } catch (err) {
        if (!notPickedUp(err)) throw err;
        event('relay_moved', `the media worker holding the relay (${queue}) did not take it back; relaying on any media worker`);
        // That worker is gone: a renewal must not send the switch there (the new relay reports its own queue).
        relayQueues.delete(cur.id);
        cur.relayQueue = undefined;
      }
    }
    return await acts.relay.relayMedia(req);
  }

  /**
   * Live: watches the current Runway session until the conversation is over, renewing it ahead of
   * Runway's runtime cap. A renewal brings the next Runway session in (direct: its avatar takes over the
   * same identity; relay: the relay switches its source room), ends the old one, then continues as new
   * so a long conversation's history stays small.
   */
  async function live(cur: Current): Promise<Outcome> {
    // maxDuration counts from the moment the conversation's avatar first went live.
    const limitAt = () => (input.maxDurationSeconds !== undefined && conversationLiveSince !== undefined ? conversationLiveSince + input.maxDurationSeconds * 1000 : undefined);
    // Relay renewal came after direct renewal: runs started before it keep their old behaviour on replay.
    const relayRenewal = () => wf.patched('relay-renewal');
    const renewing = () => timing.sessionCapSeconds > 0 && (cur.mode === 'direct' || relayRenewal());
    let renewAt: number | undefined;
    let renewalFailures = 0;
    let act: LiveActivity | undefined;
    try {
      for (;;) {
        if (endRequested !== undefined) throw new EndRequested();
        act ??= startLiveActivity(cur);
        const r = await watch(cur, act, () => Math.min(limitAt() ?? Infinity, renewAt ?? (renewing() ? capEnd(cur) - renewalLeadMs() : Infinity)));
        if (r.kind === 'outcome') {
          act = undefined;
          // A session cut at Runway's cap while the conversation goes on is replaced, never silently dropped.
          const limit = limitAt();
          if (cappedWhileGoingOn(r.outcome, cur) && (cur.mode === 'direct' || relayRenewal()) && (limit === undefined || Date.now() < limit)) {
            event('avatar_gap', `Runway session ${cur.id} was cut at the runtime cap before its replacement was ready; replacing it now`);
            flag('avatar_gap');
            open.delete(cur.id);
            if (wf.patched(RENEWAL_SLOT_KEPT)) await releaseExtraSlot();
            cur = await bringUp();
            renewAt = undefined;
            renewalFailures = 0;
            continue;
          }
          return r.outcome;
        }
        const limit = limitAt();
        if (limit !== undefined && Date.now() >= limit) return { reason: 'max_duration' };
        let next: Current | undefined;
        if (cur.mode === 'direct') {
          act = undefined; // watch() stopped the monitor
          next = await renewDirect(cur);
        } else {
          next = await renewRelay(cur, act);
        }
        if (!next) {
          // Try again soon (the old session is still serving), backing off to 30 s, but never later
          // than a few seconds before the cap.
          renewalFailures++;
          let delay = 5000;
          if (wf.patched(RENEWAL_SLOT_KEPT)) {
            const capLeft = capEnd(cur) - 5000 - Date.now();
            delay = Math.max(1000, Math.min(30_000, 5000 * 2 ** (renewalFailures - 1), capLeft));
          }
          renewAt = Date.now() + delay;
          continue;
        }
        act = undefined;
        await wf.condition(wf.allHandlersFinished);
        const carried: CarriedSession = {
          state, flags: [...flags], slots, provisioningMs, conversationLiveSince, endRequested, current: next,
        };
        return await wf.continueAsNew<typeof avatarSession>(input, carried);
      }
    } finally {
      // Leaving live any other way (end during a renewal, max duration, a failure): the relay ends the call.
      if (act && !act.settled()) await wf.CancellationScope.nonCancellable(() => act!.stop());
    }
  }

  /** Runway ended the session at its runtime cap (not a failure) while the conversation goes on. */
  function cappedWhileGoingOn(outcome: Outcome, cur: Current): boolean {
    return outcome.reason === 'runway_ended' && !outcome.error && timing.sessionCapSeconds > 0 && Date.now() - cur.liveSince >= timing.sessionCapSeconds * 900;
  }

  /**
   * Waits on the live session's activity until it returns, `end` arrives, or `until` passes
   * ({kind:'due'}). Direct mode's monitor is stopped when due; the relay goes on serving while a
   * renewal gets the next session ready.
   */
  async function watch(cur: Current, act: LiveActivity, until: () => number): Promise<{ kind: 'outcome'; outcome: Outcome } | { kind: 'due' }> {
    const stopped = () => act.settled() || endRequested !== undefined;
    // Relay: the phase turns live when the relay reports the avatar published in the customer's room.
    if (state.phase !== 'live') {
      await wf.condition(() => stopped() || cur.mode === 'direct' || relayBridged === cur.id);
      if (!stopped()) {
        if (cur.startedAt !== undefined) provisioned(cur.startedAt);
        // The cap clock keeps its earlier start (the avatar's join, or the consume): after an outage
        // here, Runway's own clock has long been running.
        if (!wf.patched(CAP_CLOCK_KEPT)) cur.liveSince = Date.now();
        conversationLiveSince ??= Date.now();
        setPhase('live');
        event('live', `avatar live in ${room} (${cur.mode}, Runway session ${cur.id})`);
      }
    }
    const end = until();
    const due = end === Infinity ? (await wf.condition(stopped), false) : !(await wf.condition(stopped, Math.max(1, end - Date.now())));
    // Relay cancellation makes it send END_CALL and leave both rooms before it returns.
    if (!act.settled() && (endRequested !== undefined || !due || cur.mode === 'direct')) await act.stop();
    if (endRequested !== undefined) throw new EndRequested();
    if (due) {
      if (cur.mode === 'relay' && limitReached()) await act.stop();
      return { kind: 'due' };
    }
    return { kind: 'outcome', outcome: await outcomeOf(cur, act) };
  }

  function limitReached(): boolean {
    return input.maxDurationSeconds !== undefined && conversationLiveSince !== undefined && Date.now() >= conversationLiveSince + input.maxDurationSeconds * 1000;
  }

  /** What a finished live activity means for the conversation. */
  async function outcomeOf(cur: Current, act: LiveActivity): Promise<Outcome> {
    if (act.failure !== undefined && !isCancellation(act.failure)) throw act.failure;
    const outcome = act.outcome;
    if (!outcome) throw new EndRequested();
    if (outcome.reason === 'room_closed') return { reason: 'room_closed' };
    // Runway ended the session, or its avatar left: read the status and surface its failureCode.
    const status = outcome.status && outcome.status !== 'RUNNING' && outcome.status !== 'READY'
      ? outcome
      : await acts.status.getRunwaySessionStatus({ runwaySessionId: cur.id });
    event('runway_ended', `Runway session ${cur.id} ended while live: ${status.status}${status.failureCode ? ` (${status.failureCode})` : ''}`);
    if (status.status === 'FAILED') {
      return { reason: 'runway_ended', error: { code: status.failureCode ?? 'runway_failed', message: `Runway session failed: ${status.failureCode ?? 'unknown'}` } };
    }
    return { reason: 'runway_ended' };
  }

  /**
   * Renewal: gets the next Runway session READY ahead of the current one's cap (with a second slot:
   * the two overlap briefly), brings it in the mode's way, and ends the old one. Undefined when the
   * replacement could not be had yet (the current avatar stays; renewal is retried).
   */
  async function renew(cur: Current, bringIn: (id: string) => Promise<Current>): Promise<Current | undefined> {
    event('renewing', `renewing Runway session ${cur.id} ahead of the ${timing.sessionCapSeconds} s cap`);
    const startedAt = Date.now();
    let id: string | undefined;
    try {
      await acquireSlot({ extra: true, deadline: capEnd(cur) });
      id = await createRunwaySession(cur.mode, { renewal: true });
      await step(() => acts.ready.waitUntilReady({ runwaySessionId: id!, deadlineSeconds: timing.readyDeadlineSeconds, acceptRunning: cur.mode === 'direct' }));
      const next = await bringIn(id);
      provisioned(startedAt);
      await endRunwaySession(cur.id, undefined);
      // Awaited: the release is done before the run continues as new (it used to go out in the same
      // workflow task as continue-as-new).
      if (wf.patched(RENEWAL_SLOT_KEPT)) await releaseExtraSlot();
      else void releaseExtraSlot();
      state.renewals = (state.renewals ?? 0) + 1;
      metrics.renewals.add(1);
      event('renewed', `Runway session ${id} took over from ${cur.id} after ${Date.now() - startedAt} ms`);
      return next;
    } catch (err) {
      if (err instanceof EndRequested || isCancellation(err)) throw err;
      event('renewal_failed', `could not renew Runway session ${cur.id} yet: ${failureMessage(err)}; the current avatar stays and renewal is retried`);
      flag('renewal_failed');
      if (id !== undefined && id !== cur.id) await endRunwaySession(id, undefined);
      // The extra slot (held or still asked for) is kept for the next attempt: releasing and asking
      // again on every retry flooded admission control with signals at scale.
      if (!wf.patched(RENEWAL_SLOT_KEPT)) void releaseExtraSlot();
      return undefined;
    }
  }

  /**
   * Direct mode: the new Runway session's avatar joins with the same identity (LiveKit swaps the
   * participant). The old avatar lost its identity to the new one, so END_CALL by identity would reach
   * the new avatar: the old session is ended by Runway (it lost its room) or cancelled after the grace.
   */
  function renewDirect(cur: Current): Promise<Current | undefined> {
    return renew(cur, async (id) => {
      const { sid, joinedAtMs } = await step(() => acts.ready.waitForAvatarInRoom({ roomName: room, avatarIdentity: directAvatar, timeoutSeconds: timing.avatarJoinTimeoutSeconds, excludeSid: cur.avatarSid }));
      return { id, mode: 'direct', avatarSid: sid, liveSince: capClockStart(joinedAtMs) };
    });
  }

  /**
   * Relay mode: the new session is consumed while the relay goes on serving the current one; then
   * the relay switches its source room (its tracks in the customer's room stay published), END_CALL
   * ends the old session, and the relay is handed over to the next run. If the switch cannot be made
   * (the media worker is gone), the next run relays the new session afresh.
   */
  function renewRelay(cur: Current, act: LiveActivity): Promise<Current | undefined> {
    return renew(cur, async (id) => {
      const { sealedCredentials } = await step(() => acts.consume.consumeRunwaySession({ runwaySessionId: id }));
      const next: Current = { id, mode: 'relay', sealedCredentials, liveSince: Date.now() };
      const queue = relayQueues.get(cur.id) ?? cur.relayQueue;
      if (act.settled()) {
        event('avatar_gap', `the relay of Runway session ${cur.id} ended before its replacement was ready; relaying ${id} afresh`);
        flag('avatar_gap');
      } else if (!queue) {
        event('relay_switch_failed', `no media worker is known to hold the relay right now; Runway session ${id} will be relayed afresh`);
        flag('relay_switch_failed');
      } else {
        try {
          const { gapMs } = await step(() => acts.pinnedMedia(queue).switchRelaySource({
            conversationId: input.conversationId, fromRunwaySessionId: cur.id, runwaySessionId: id, sealedCredentials, timeoutSeconds: timing.avatarJoinTimeoutSeconds,
          }));
          next.relayQueue = queue;
          // The relay activity returns 'handed_over' right after the switch (the relay stays, parked).
          await wf.condition(act.settled, timing.heartbeatTimeoutSeconds * 1000);
          event('relay_switched', `the relay switched to Runway session ${id} (longest pause between forwarded frames ${gapMs} ms)`);
        } catch (err) {
          if (err instanceof EndRequested || isCancellation(err)) throw err;
          event('relay_switch_failed', `the relay could not switch to Runway session ${id} (${failureMessage(err)}); it will be relayed afresh`);
          flag('relay_switch_failed');
        }
      }
      // Not switched: the relay sends END_CALL to the old session as it leaves.
      await act.stop();
      return next;
    });
  }

  // ---- Run it, then always tear down ---------------------------------------------------------------
  let rethrow: unknown;
  try {
    const outcome = await live(carried?.current ?? (await bringUp()));
    state.endReason = outcome.reason;
    state.error = outcome.error;
  } catch (err) {
    // A renewal hands the live session to a fresh run: nothing to tear down.
    if (err instanceof wf.ContinueAsNew) throw err;
    if (err instanceof EndRequested) {
      state.endReason = 'ended_by_request';
    } else if (isCancellation(err)) {
      state.endReason = 'cancelled';
      rethrow = err;
    } else {
      state.endReason = 'failed';
      state.error = { code: failureType(err) ?? (timedOut(err) ? 'activity_timed_out' : 'internal'), message: failureMessage(err) };
      event('failed', `session failed: ${state.error.code}: ${state.error.message}`);
    }
  }

  await wf.CancellationScope.nonCancellable(async () => {
    setPhase('tearing_down');
    for (const id of [...open]) await endRunwaySession(id, state.mode);
    const { removed } = await acts.teardown.removeServiceParticipants({ roomName: room, identities: [bridge, directAvatar] });
    if (removed.length) event('participants_removed', `removed ${removed.join(', ')} from ${room}`);
    for (const requestId of slots.splice(0)) await acts.teardown.releaseAdmission({ requestId });
  });

  setPhase(state.error ? 'failed' : 'completed');
  wf.upsertSearchAttributes([{ key: EndReasonKey, value: state.endReason ?? 'failed' }]);
  event('ended', `session ${state.phase}: ${state.endReason}`);
  metrics.ended.add(1, { end_reason: state.endReason ?? 'failed', outcome: state.phase, mode: state.mode ?? 'none' });
  await wf.condition(wf.allHandlersFinished);
  if (rethrow) throw rethrow;
  if (state.error) throw ApplicationFailure.create({ type: state.error.code, message: state.error.message, nonRetryable: true, details: [state] });
  return state;
}

// ---- Activity options: one proxy per retry personality --------------------------------------------

function activityProxies(t: SessionTiming) {
  const nonRetryableErrorTypes = [...NON_RETRYABLE_KINDS, 'invalid_input', 'session_failed', 'session_ended', 'ready_timeout', 'avatar_not_joined', 'not_ready', 'relay_unavailable'];
  const heartbeatTimeout = t.heartbeatTimeoutSeconds * 1000;
  return {
    // One attempt: the workflow retries creates itself (see createRunwaySession), so that a create
    // lost with its worker is recorded as ambiguous instead of silently sent again by a retry.
    create: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '30s',
      retry: { maximumAttempts: 1 },
    }),
    ready: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: (Math.max(t.readyDeadlineSeconds, t.avatarJoinTimeoutSeconds) + 60) * 1000,
      heartbeatTimeout,
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5, nonRetryableErrorTypes },
    }),
    consume: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '20s',
      retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes },
    }),
    status: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '15s',
      retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 5, nonRetryableErrorTypes },
    }),
    monitor: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '24h',
      heartbeatTimeout,
      cancellationType: wf.ActivityCancellationType.TRY_CANCEL,
      retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 10, nonRetryableErrorTypes },
    }),
    relay: wf.proxyActivities<MediaActivities>({
      taskQueue: MEDIA_TASK_QUEUE,
      startToCloseTimeout: '24h',
      heartbeatTimeout,
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      // Each media worker crash costs an attempt (heartbeat timeout); the relay's own failures that
      // no retry fixes are non-retryable.
      retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 10, nonRetryableErrorTypes },
    }),
    /** Media activities on one media worker's own queue (renewal); they fail fast when that worker is gone. */
    pinnedMedia: (queue: string) => wf.proxyActivities<MediaActivities>({
      taskQueue: queue,
      scheduleToStartTimeout: '10s',
      startToCloseTimeout: '24h',
      heartbeatTimeout,
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: [...nonRetryableErrorTypes, 'relay_not_here', 'relay_switch_failed'] },
    }),
    // Teardown: END_CALL is best effort (cancel is the fallback); ending the Runway session and removing
    // our participants retry until they succeed, because a leaked session keeps billing.
    endCall: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '10s',
      scheduleToCloseTimeout: '30s',
      retry: { initialInterval: '500ms', maximumInterval: '5s' },
    }),
    admission: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: '15s',
      retry: { initialInterval: '500ms', maximumInterval: '10s' },
    }),
    teardown: wf.proxyActivities<SessionActivities>({
      startToCloseTimeout: (t.endCallGraceSeconds + 30) * 1000,
      heartbeatTimeout: '10s',
      retry: { initialInterval: '1s', maximumInterval: '30s' },
    }),
  };
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** An activity attempt that ran out of time (its worker died, or it hung): what it did is unknown. */
function timedOut(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}

/** A failure a retry may fix (the activity said so). */
function isTransient(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && !cause.nonRetryable && !(NON_RETRYABLE_KINDS as readonly string[]).includes(cause.type ?? '');
}

/** The server's requested delay (429 Retry-After), carried by the activity's failure. */
function retryDelayOf(err: unknown): number | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const d = cause instanceof ApplicationFailure ? cause.nextRetryDelay : undefined;
  if (d === undefined || d === null) return undefined;
  return msToNumber(d);
}

/** An activity no worker took from its queue in time (a pinned media worker that is gone). */
function notPickedUp(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
