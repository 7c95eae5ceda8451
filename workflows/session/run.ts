// SessionRun: the one object that owns a session's state for one workflow run. Everything the
// lifecycle modules change goes through it: the phase and mode (search attributes set here and only
// here), the Runway sessions this conversation owns, admission slots, provisioning times, and the
// messages (the `state` query, the `end` signal, the `waitLive` update, and the internal signals from
// admission control and the relay). As in Temporal's safe-message-handlers sample, handlers only
// record what arrived; the lifecycle acts on it.
import * as wf from '@temporalio/workflow';
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import type { SearchAttributeUpdatePair, TypedSearchAttributes } from '@temporalio/common';
import { resolveTiming } from '../input';
import {
  BilledSecondsKey,
  EndReasonKey,
  FlagsKey,
  LiveKitRoomKey,
  ModeKey,
  PhaseKey,
  RunwaySessionIdKey,
  RunwaySessionIdsKey,
  avatarRoomEventSignal,
  bridgeIdentity,
  conversationOfIdentity,
  directAvatarIdentity,
  endSignal,
  relayBridgedSignal,
  slotGrantedSignal,
  stateQuery,
  waitLiveUpdate,
} from '../shared';
import type { BridgeMode, EndReason, LiveInfo, SessionInput, SessionMode, SessionPhase, SessionState, SessionTiming } from '../types';
import { sessionActivities, type SessionActivityCalls } from './activities';
import { EndRequested, failureCode, failureMessage } from './failures';

/** The Runway session currently serving the conversation. */
export interface Serving {
  id: string;
  mode: BridgeMode;
  /** When Runway's runtime cap started counting (the avatar's join, or the consume). */
  liveSince: number;
  /** Direct mode: the avatar participant's sid (a renewal waits for a different one). */
  avatarSid?: string;
  /** Direct mode: the avatar's identity in the customer's room (absent: the conversation's first one). */
  avatarIdentity?: string;
  /** Relay mode: Runway's room credentials, sealed. */
  sealedCredentials?: string;
  /** Relay mode: when bring-up started (provisioning time is measured when the relay reports bridged). */
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
  /** Ended Runway sessions whose billed seconds were not read yet (workflows/session/billing.ts). */
  unbilled?: string[];
  current: Serving;
}

/** How the live part of a session ended (a failure is thrown instead). */
export interface Outcome {
  reason: EndReason;
  error?: { code: string; message: string };
}

export class SessionRun {
  readonly timing: SessionTiming;
  readonly acts: SessionActivityCalls;
  readonly room: string;
  readonly requestedMode: SessionMode;
  readonly bridgeIdentity: string;
  readonly state: SessionState;
  /** Every Runway session this run must see ended (teardown ends whatever is left here). */
  readonly ownedRunwaySessionIds: Set<string>;
  /** Ended Runway sessions whose billed seconds are still to be read (workflows/session/billing.ts). */
  readonly unbilled: string[];
  /** Admission slot requests this session holds or waits for; [0] the session's, [1] a renewal's extra. */
  readonly slotRequests: string[];
  readonly grantedSlots = new Set<string>();
  /** The last few provisioning times (create → avatar in the room): renewals start early enough. */
  readonly provisioningMs: number[];
  /** When the conversation's avatar first went live (maxDuration counts from here). */
  conversationLiveSince?: number;
  /** Set by `end`; every cancellable step stops when it is. */
  endRequested?: string;
  /**
   * Time waited for capacity so far in this bring-up (workflows/session/admission.ts): counts only
   * while the workflow could run, so an outage of Temporal or the worker does not use up the wait.
   * Every bring-up (the first, or a replacement after an avatar gap in any run) starts from 0.
   */
  capacityWaitedMs = 0;
  /** Which media worker queue holds the relay of each Runway session (the relay reports it). */
  readonly relayQueues = new Map<string, string>();
  /** Relays started afresh per Runway session because its room was empty while Runway said it runs (live.ts). */
  readonly relayRestarts = new Map<string, number>();
  /** The Runway session whose relay reported the avatar published in the customer's room. */
  bridgedRunwaySessionId?: string;
  /** Direct avatars (participant sids) LiveKit reported gone from the room or no longer publishing video. */
  readonly departedAvatarSids = new Set<string>();
  /** Direct avatars (participant sids) of this conversation's own Runway sessions. */
  readonly ownAvatarSids = new Set<string>();
  /** The last participant LiveKit reported joining under each avatar identity of this conversation. */
  private readonly joinedAvatars = new Map<string, string>();
  /** Ghost avatars (participant sids) removed or being removed. */
  private readonly ghostsRemoved = new Set<string>();
  /** Direct mode: the identity each Runway session's avatar was given (this run's creates). */
  readonly avatarIdentityOf = new Map<string, string>();
  private readonly flags: Set<string>;
  private phaseSince = Date.now();
  /**
   * Search attribute changes not sent yet. They go out together (one history event) when the workflow
   * next blocks (a regular activity, a wait): until the workflow task completes nobody sees them anyway.
   */
  private pendingAttributes: SearchAttributeUpdatePair[] = [];
  /** The phase last written to the search attribute. */
  private phaseAttribute?: SessionPhase;
  private readonly metrics = {
    phaseSeconds: wf.metricMeter.createHistogram('avatar_session_phase_seconds', 'float', 's', 'Time a session spent in each phase'),
    phases: wf.metricMeter.createCounter('avatar_session_phase_entered', 'sessions', 'Sessions entering each phase'),
    ended: wf.metricMeter.createCounter('avatar_sessions_ended', 'sessions', 'Sessions ended, by end reason'),
    flags: wf.metricMeter.createCounter('avatar_session_flags', 'events', 'Fallbacks to relay, ambiguous creates, failed renewals'),
    renewals: wf.metricMeter.createCounter('avatar_session_renewals', 'renewals', 'Runway sessions renewed ahead of the runtime cap'),
    billedSeconds: wf.metricMeter.createCounter(
      'avatar_runway_billed_seconds',
      's',
      'Billed Runway seconds of ended conversations (every Runway session each created), by end reason and mode',
    ),
  };

  constructor(
    readonly input: SessionInput,
    carried?: CarriedSession,
  ) {
    this.timing = resolveTiming(input);
    this.acts = sessionActivities(this.timing, () => this.publish());
    this.room = input.livekit.roomName;
    this.requestedMode = input.mode ?? 'auto';
    this.bridgeIdentity = bridgeIdentity(input.conversationId);
    this.state = carried?.state ?? {
      conversationId: input.conversationId,
      phase: 'waiting_capacity',
      requestedMode: this.requestedMode,
      runwaySessionIds: [],
      roomName: this.room,
      ...(input.livekit.endUserIdentity ? { endUserIdentity: input.livekit.endUserIdentity } : {}),
      phaseTimes: {},
      ambiguousCreates: [],
      billedSeconds: 0,
      billedSecondsComplete: false,
      events: [],
    };
    this.flags = new Set(carried?.flags ?? []);
    this.ownedRunwaySessionIds = new Set(carried ? [carried.current.id] : []);
    this.unbilled = [...(carried?.unbilled ?? [])];
    if (carried?.current.avatarSid) this.ownAvatarSids.add(carried.current.avatarSid);
    this.slotRequests = carried?.slots ?? [];
    // The session's own slot was granted in an earlier run (it went live): still held here.
    if (carried && this.slotRequests[0] !== undefined) this.grantedSlots.add(this.slotRequests[0]);
    this.provisioningMs = carried?.provisioningMs ?? [];
    this.conversationLiveSince = carried?.conversationLiveSince;
    this.endRequested = carried?.endRequested;
    // What the start already set (the client sets phase and room) is not upserted again.
    const startedWith = wf.workflowInfo().typedSearchAttributes;
    this.phaseAttribute = carried?.state.phase ?? (startedWith.get(PhaseKey) as SessionPhase | undefined);
    this.registerHandlers();
    if (!carried) {
      if (startedWith.get(LiveKitRoomKey) !== this.room) this.pendingAttributes.push({ key: LiveKitRoomKey, value: this.room });
      // Sortable from the start (the typed client sets it at start: then no upsert here).
      if (startedWith.get(BilledSecondsKey) === undefined) this.pendingAttributes.push({ key: BilledSecondsKey, value: 0 });
    }
  }

  private registerHandlers(): void {
    wf.setHandler(stateQuery, () => this.state);
    wf.setHandler(endSignal, (reason) => {
      if (this.endRequested !== undefined) return;
      this.endRequested = reason ?? 'requested';
      this.event('end_requested', `end requested: ${this.endRequested}`);
    });
    wf.setHandler(slotGrantedSignal, ({ requestId }) => void this.grantedSlots.add(requestId));
    wf.setHandler(relayBridgedSignal, ({ runwaySessionId, workerQueue }) => {
      if (workerQueue) this.relayQueues.set(runwaySessionId, workerQueue);
      if (runwaySessionId === this.state.runwaySessionId) this.bridgedRunwaySessionId = runwaySessionId;
    });
    wf.setHandler(avatarRoomEventSignal, async (ev) => {
      if (ev.roomName !== this.room || !ev.identity.startsWith('runway-avatar-') || conversationOfIdentity(ev.identity) !== this.input.conversationId) return;
      if (ev.event === 'participant_joined') {
        this.joinedAvatars.set(ev.identity, ev.participantSid);
        await this.removeGhost(ev.identity);
        return;
      }
      this.departedAvatarSids.add(ev.participantSid);
      if (this.departedAvatarSids.size > 20) this.departedAvatarSids.delete(this.departedAvatarSids.values().next().value!);
    });
    wf.setHandler(waitLiveUpdate, async (): Promise<LiveInfo> => {
      await wf.condition(() => this.state.phase === 'live' || this.isOver());
      const live = this.liveInfo();
      if (live) return live;
      throw ApplicationFailure.create({
        type: this.state.error?.code ?? 'not_live',
        message: this.state.error?.message ?? `session ended before it was live (${this.state.endReason ?? 'ended'})`,
        nonRetryable: true,
      });
    });
  }

  private liveInfo(): LiveInfo | undefined {
    const { phase, mode, runwaySessionId, avatarIdentity, conversationId } = this.state;
    if (phase !== 'live' || !mode || !runwaySessionId || !avatarIdentity) return undefined;
    return {
      conversationId,
      roomName: this.room,
      mode,
      runwaySessionId,
      avatarIdentity,
      ...(mode === 'direct' ? { audioStreamTopic: 'lk.audio_stream' } : {}),
    };
  }

  /**
   * The identity the next direct-mode Runway session's avatar gets: the conversation's usual one,
   * until a create whose answer was lost used it up (its ghost may join with it any time).
   */
  get directAvatarIdentity(): string {
    return directAvatarIdentity(this.input.conversationId, this.state.avatarGeneration ?? 0);
  }

  /** Every direct avatar identity this conversation used (teardown removes them all). */
  avatarIdentities(): string[] {
    return Array.from({ length: (this.state.avatarGeneration ?? 0) + 1 }, (_, g) => directAvatarIdentity(this.input.conversationId, g));
  }

  /**
   * A create whose answer was lost used `identity`: no later Runway session of this conversation
   * gets it, and an avatar joining with it is not ours to keep (removed as soon as LiveKit reports it).
   */
  usedUpAvatarIdentity(identity: string): void {
    if (identity !== this.directAvatarIdentity) return;
    this.state.avatarGeneration = (this.state.avatarGeneration ?? 0) + 1;
    void this.removeGhost(identity); // it may have joined before the create's failure was known
  }

  /**
   * Removes the avatar that joined under `identity` if it is a ghost: the identity was given to a
   * create whose answer was lost, and the participant is none of this conversation's own avatars.
   * Removing by identity also revokes the tokens minted for it (LiveKit's RemoveParticipant), so the
   * ghost cannot join again; Runway's session behind it ends without its room, or the reaper ends it.
   */
  private async removeGhost(identity: string): Promise<void> {
    const sid = this.joinedAvatars.get(identity);
    const usedUp = this.state.ambiguousCreates.some((a) => a.avatarIdentity === identity);
    if (!sid || !usedUp || this.ownAvatarSids.has(sid) || this.ghostsRemoved.has(sid)) return;
    this.ghostsRemoved.add(sid);
    this.flag('ghost_avatar');
    this.event('ghost_avatar', `an avatar of a create whose answer was lost joined ${this.room} as ${identity}: removing it`);
    try {
      await wf.CancellationScope.nonCancellable(() => this.acts.removeServiceParticipants({ roomName: this.room, identities: [identity] }));
    } catch (err) {
      this.event('ghost_avatar', `could not remove ${identity} (${failureMessage(err)}); the reaper ends its Runway session`);
    }
  }

  /** A direct avatar of this conversation's own Runway session is in the room. */
  ownAvatar(sid: string): void {
    this.ownAvatarSids.add(sid);
    if (this.ownAvatarSids.size > 20) this.ownAvatarSids.delete(this.ownAvatarSids.values().next().value!);
  }

  /** LiveKit reported this direct avatar gone (left, or stopped publishing video). */
  avatarDeparted(serving: Serving): boolean {
    return serving.avatarSid !== undefined && this.departedAvatarSids.has(serving.avatarSid);
  }

  isOver(): boolean {
    return this.state.phase === 'tearing_down' || this.state.phase === 'completed' || this.state.phase === 'failed';
  }

  get ending(): boolean {
    return this.endRequested !== undefined;
  }

  /** wf.condition, after sending what the search attributes should show while it waits. */
  async waitFor(fn: () => boolean, timeoutMs?: number): Promise<boolean> {
    this.publish();
    if (timeoutMs === undefined) {
      await wf.condition(fn);
      return true;
    }
    return await wf.condition(fn, timeoutMs);
  }

  throwIfEnding(): void {
    if (this.ending) throw new EndRequested();
  }

  /** Runs one cancellable step of the lifecycle; `end` cancels it and it throws EndRequested. */
  async untilEnd<T>(fn: () => Promise<T>): Promise<T> {
    this.throwIfEnding();
    const scope = new wf.CancellationScope();
    // A watcher that cancels the step on `end`; itself cancelled when the step settles (its rejection
    // is handled: an unhandled one would fail the workflow task).
    const watcher = new wf.CancellationScope();
    watcher
      .run(() => wf.condition(() => this.ending))
      .then(
        () => scope.cancel(),
        () => undefined,
      );
    try {
      return await scope.run(fn);
    } catch (err) {
      // Ended while the step ran: whatever the step says now (cancelled, or failed on its way out), the
      // session ends by request.
      if (this.ending) throw new EndRequested();
      throw err;
    } finally {
      watcher.cancel();
    }
  }

  // ---- State changes (the only place search attributes are set) ----------------------------------

  setPhase(phase: SessionPhase): void {
    const now = Date.now();
    if (this.state.phase !== phase || !this.state.phaseTimes[phase]) {
      if (this.state.phaseTimes[this.state.phase]) this.metrics.phaseSeconds.record((now - this.phaseSince) / 1000, { phase: this.state.phase });
      this.metrics.phases.add(1, { phase });
      this.phaseSince = now;
    }
    this.state.phase = phase;
    this.state.phaseTimes[phase] = new Date(now).toISOString();
    if (this.phaseAttribute !== phase) {
      this.phaseAttribute = phase;
      this.pendingAttributes = this.pendingAttributes.filter((a) => a.key !== PhaseKey);
      this.pendingAttributes.push({ key: PhaseKey, value: phase });
    }
  }

  /** Sends the pending search attribute changes in one upsert (called where the workflow blocks). */
  publish(): void {
    if (!this.pendingAttributes.length) return;
    wf.upsertSearchAttributes(this.pendingAttributes);
    this.pendingAttributes = [];
  }

  setMode(mode: BridgeMode): void {
    if (this.state.mode === mode) return;
    this.state.mode = mode;
    this.pendingAttributes = this.pendingAttributes.filter((a) => a.key !== ModeKey);
    // The start set the requested mode; a mode equal to what the attribute shows costs no upsert.
    if (wf.workflowInfo().typedSearchAttributes.get(ModeKey) !== mode) this.pendingAttributes.push({ key: ModeKey, value: mode });
  }

  flag(f: string): void {
    this.metrics.flags.add(1, { flag: f });
    if (this.flags.has(f)) return;
    this.flags.add(f);
    this.pendingAttributes = this.pendingAttributes.filter((a) => a.key !== FlagsKey);
    this.pendingAttributes.push({ key: FlagsKey, value: [...this.flags] });
  }

  event(type: string, message: string): void {
    this.state.events.push({ at: new Date(Date.now()).toISOString(), type, message });
    if (this.state.events.length > 50) this.state.events.splice(0, this.state.events.length - 50);
    wf.log.info(message, { event: type, conversationId: this.input.conversationId });
  }

  /** A Runway session this conversation now owns (and must end). */
  created(runwaySessionId: string, mode: BridgeMode): void {
    this.ownedRunwaySessionIds.add(runwaySessionId);
    this.state.runwaySessionId = runwaySessionId;
    this.state.runwaySessionIds.push(runwaySessionId);
    this.pendingAttributes = this.pendingAttributes.filter((a) => a.key !== RunwaySessionIdKey && a.key !== RunwaySessionIdsKey);
    this.pendingAttributes.push(
      { key: RunwaySessionIdKey, value: runwaySessionId },
      // Bounded (the current and the previous one): a search attribute value is limited to 2 KiB and a
      // long conversation renews every few minutes. The full list is in the state.
      { key: RunwaySessionIdsKey, value: this.state.runwaySessionIds.slice(-2) },
    );
    this.event('runway_session_created', `Runway session ${runwaySessionId} created (${mode})`);
  }

  /** The avatar went live: the phase, and the clock of the conversation's maxDuration. */
  wentLive(serving: Serving): void {
    if (serving.startedAt !== undefined) this.provisioned(serving.startedAt);
    this.conversationLiveSince ??= Date.now();
    this.setPhase('live');
    this.event('live', `avatar live in ${this.room} (${serving.mode}, Runway session ${serving.id})`);
  }

  /** `seconds` more billed Runway seconds, read from `sessions` ended Runway sessions. */
  billed(seconds: number, sessions: number): void {
    if (!sessions) return;
    this.state.billedSeconds += seconds;
    this.pendingAttributes = this.pendingAttributes.filter((a) => a.key !== BilledSecondsKey);
    this.pendingAttributes.push({ key: BilledSecondsKey, value: Math.round(this.state.billedSeconds) });
  }

  renewed(): void {
    this.state.renewals = (this.state.renewals ?? 0) + 1;
    this.metrics.renewals.add(1);
  }

  // ---- Clocks ------------------------------------------------------------------------------------

  provisioned(startedAt: number): void {
    this.provisioningMs.push(Date.now() - startedAt);
    if (this.provisioningMs.length > 5) this.provisioningMs.shift();
  }

  /** How long before the cap a renewal starts: covers twice the worst recent provisioning. */
  renewalLeadMs(): number {
    const worst = this.provisioningMs.length ? Math.max(...this.provisioningMs) : 10_000;
    return Math.min(this.timing.sessionCapSeconds * 500, Math.max(this.timing.renewalLeadSeconds * 1000, 2 * worst + 5000));
  }

  /** When Runway's runtime cap cuts this Runway session. */
  capEnd(serving: Serving): number {
    return serving.liveSince + this.timing.sessionCapSeconds * 1000;
  }

  /** When the conversation's maxDuration ends it (undefined: no limit, or not live yet). */
  maxDurationEnd(): number | undefined {
    const max = this.input.maxDurationSeconds;
    return max !== undefined && this.conversationLiveSince !== undefined ? this.conversationLiveSince + max * 1000 : undefined;
  }

  maxDurationReached(): boolean {
    const end = this.maxDurationEnd();
    return end !== undefined && Date.now() >= end;
  }

  // ---- The end -----------------------------------------------------------------------------------

  carry(next: Serving): CarriedSession {
    return {
      state: this.state,
      flags: [...this.flags],
      slots: this.slotRequests,
      provisioningMs: this.provisioningMs,
      conversationLiveSince: this.conversationLiveSince,
      endRequested: this.endRequested,
      unbilled: this.unbilled,
      current: next,
    };
  }

  /**
   * The search attributes the next run starts with: this run's, with the changes not sent yet (they go
   * with continue-as-new instead of an upsert event of their own).
   */
  nextRunAttributes(): TypedSearchAttributes {
    const attributes = wf.workflowInfo().typedSearchAttributes.updateCopy(this.pendingAttributes);
    this.pendingAttributes = [];
    return attributes;
  }

  ended(outcome: Outcome): void {
    this.state.endReason = outcome.reason;
    this.state.error = outcome.error;
  }

  /** Records why the lifecycle stopped with an error; returns the error to rethrow after teardown, if any. */
  failed(err: unknown): unknown {
    if (err instanceof EndRequested) {
      this.state.endReason = 'ended_by_request';
      return undefined;
    }
    if (isCancellation(err)) {
      this.state.endReason = 'cancelled';
      return err;
    }
    this.state.endReason = 'failed';
    this.state.error = { code: failureCode(err), message: failureMessage(err) };
    this.event('failed', `session failed: ${this.state.error.code}: ${this.state.error.message}`);
    return undefined;
  }

  /** The final phase, end reason and metrics, once teardown is done. */
  finish(): void {
    this.pendingAttributes.push({ key: EndReasonKey, value: this.state.endReason ?? 'failed' });
    this.setPhase(this.state.error ? 'failed' : 'completed');
    this.publish();
    this.event('ended', `session ${this.state.phase}: ${this.state.endReason}`);
    const labels = { end_reason: this.state.endReason ?? 'failed', mode: this.state.mode ?? 'none' };
    this.metrics.ended.add(1, { ...labels, outcome: this.state.phase });
    this.metrics.billedSeconds.add(Math.round(this.state.billedSeconds), labels);
  }

  /** The workflow's result: the state, or the session's failure carrying it. */
  result(): SessionState {
    if (this.state.error) {
      throw ApplicationFailure.create({ type: this.state.error.code, message: this.state.error.message, nonRetryable: true, details: [this.state] });
    }
    return this.state;
  }
}
