// The typed client for backends that talk to Temporal directly. It shares the workflow's message
// definitions, so a rename breaks the build rather than a running system.
import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { validateSessionInput } from '../session-input';
import {
  BilledSecondsKey,
  ConversationIdKey,
  EndReasonKey,
  LiveKitRoomKey,
  ModeKey,
  PhaseKey,
  SESSION_TASK_QUEUE,
  SESSION_WORKFLOW_TYPE,
  avatarRoomEventSignal,
  endSignal,
  sessionWorkflowId,
  stateQuery,
  waitLiveUpdate,
  type AvatarRoomEvent,
} from '../../workflows/shared';
import type { avatarSession } from '../../workflows/session';
import type { avatarTranscript } from '../../workflows/transcript';
import { TERMINAL_PHASES, type ConversationTranscript, type LiveInfo, type SessionInput, type SessionPhase, type SessionState } from '../../workflows/types';

export interface StartedSession {
  conversationId: string;
  workflowId: string;
  runId: string;
  /** false when the conversation already had a running session (that one is returned). */
  started: boolean;
}

/**
 * The conversation already had a session, which ended: a start does not bring the avatar back into a
 * room the user may have left (a retried request, a late duplicate). Start again with `restart: true`.
 */
export class SessionEndedError extends Error {
  override readonly name = 'SessionEndedError';
  constructor(
    readonly conversationId: string,
    readonly previous: { workflowId: string; runId: string; status: string; phase?: string; endReason?: string; error?: { code: string; message: string } },
  ) {
    super(
      `conversation ${conversationId} already had a session, which ended (${previous.phase ?? previous.status.toLowerCase()}${previous.endReason ? `: ${previous.endReason}` : ''}); start it with restart: true for a new one`,
    );
  }
}

export interface StartOptions {
  /** Start a new session even if the conversation's last one ended (otherwise: SessionEndedError). */
  restart?: boolean;
}

/**
 * A conversation's transcript, or why there is none yet: `pending` while the session runs or Runway
 * finalizes (ask again later), `none` when the session ended without one (it created no Runway
 * session, or the fetch could not start; the session's events say which).
 */
export type TranscriptAnswer = ConversationTranscript | { status: 'pending'; reason: string } | { status: 'none'; reason: string };

export interface SessionSummary {
  conversationId: string;
  workflowId: string;
  runId: string;
  status: string;
  phase?: string;
  mode?: string;
  roomName?: string;
  /** Billed Runway seconds so far (search attribute RunwayBilledSeconds; the state has the exact figure). */
  billedSeconds?: number;
  startTime: Date;
  closeTime?: Date;
}

export class SessionsClient {
  constructor(
    readonly client: Client,
    private readonly taskQueue = SESSION_TASK_QUEUE,
  ) {}

  private startOptions(input: SessionInput, restart = false) {
    return {
      taskQueue: this.taskQueue,
      // A closed session of the conversation blocks a new start unless the caller asks to restart.
      workflowIdReusePolicy: restart ? ('ALLOW_DUPLICATE' as const) : ('REJECT_DUPLICATE' as const),
      workflowId: sessionWorkflowId(input.conversationId),
      args: [input] as [SessionInput],
      typedSearchAttributes: [
        { key: ConversationIdKey, value: input.conversationId },
        { key: LiveKitRoomKey, value: input.livekit.roomName },
        { key: PhaseKey, value: 'waiting_capacity' }, // the workflow's first phase: it does not upsert it again
        { key: ModeKey, value: input.mode ?? 'auto' },
        { key: BilledSecondsKey, value: 0 },
      ],
      staticSummary: `Runway avatar for conversation ${input.conversationId}`,
      staticDetails: `room **${input.livekit.roomName}**, mode **${input.mode ?? 'auto'}**, avatar ${input.avatar.type === 'custom' ? input.avatar.avatarId : input.avatar.presetId}`,
    };
  }

  /**
   * Starts the conversation's session; if one is already running, returns that one (never a second
   * Runway session). If the conversation's session already ended, throws SessionEndedError unless
   * `restart` is set.
   */
  async startSession(rawInput: SessionInput, opts: StartOptions = {}): Promise<StartedSession> {
    const input = validateSessionInput(rawInput);
    const start = this.startOptions(input, opts.restart);
    try {
      const handle = await this.client.workflow.start<typeof avatarSession>(SESSION_WORKFLOW_TYPE, { ...start, workflowIdConflictPolicy: 'FAIL' });
      return { conversationId: input.conversationId, workflowId: handle.workflowId, runId: handle.firstExecutionRunId, started: true };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const desc = await this.client.workflow.getHandle(start.workflowId).describe();
      if (desc.status.name !== 'RUNNING') throw await this.endedError(input.conversationId, desc);
      return { conversationId: input.conversationId, workflowId: start.workflowId, runId: desc.runId, started: false };
    }
  }

  /** What a start found: the conversation's last session, closed. */
  private async endedError(
    conversationId: string,
    desc: { workflowId: string; runId: string; status: { name: string }; typedSearchAttributes: WorkflowExecutionInfo['typedSearchAttributes'] },
  ): Promise<SessionEndedError> {
    const state = await this.getSession(conversationId).catch(() => undefined);
    return new SessionEndedError(conversationId, {
      workflowId: desc.workflowId,
      runId: desc.runId,
      status: desc.status.name,
      phase: state?.phase ?? desc.typedSearchAttributes.get(PhaseKey),
      endReason: state?.endReason ?? desc.typedSearchAttributes.get(EndReasonKey),
      ...(state?.error ? { error: state.error } : {}),
    });
  }

  /**
   * Starts (or joins) the session and waits until it is live, in one round trip (update-with-start).
   * A conversation whose session ended: SessionEndedError unless `restart`.
   */
  async startAndWaitLive(rawInput: SessionInput, opts: StartOptions = {}): Promise<{ workflowId: string; runId: string; live: LiveInfo }> {
    const input = validateSessionInput(rawInput);
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof avatarSession>(SESSION_WORKFLOW_TYPE, {
      ...this.startOptions(input, opts.restart),
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    let live: LiveInfo;
    try {
      live = await this.client.workflow.executeUpdateWithStart(waitLiveUpdate, { startWorkflowOperation });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const desc = await this.client.workflow.getHandle(sessionWorkflowId(input.conversationId)).describe();
      throw await this.endedError(input.conversationId, desc);
    }
    const handle = await startWorkflowOperation.workflowHandle();
    const { runId } = await handle.describe();
    return { workflowId: handle.workflowId, runId, live };
  }

  /** Waits until a running session is live (or throws its failure). */
  async waitLive(conversationId: string): Promise<LiveInfo> {
    return this.client.workflow.getHandle(sessionWorkflowId(conversationId)).executeUpdate(waitLiveUpdate);
  }

  /**
   * Waits at most `ms` for the session to be live. On timeout the wait is aborted (its long poll
   * ends), so nothing keeps running behind the answer; a session that ended first is `{err}`.
   */
  async waitLiveFor(conversationId: string, ms: number): Promise<{ live: LiveInfo } | { err: Error } | { timeout: true }> {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.client
        .withAbortSignal(abort.signal, () => this.waitLive(conversationId))
        .then(
          (live) => ({ live }),
          (err: Error) => ({ err }),
        ),
      new Promise<{ timeout: true }>((r) => (timer = setTimeout(() => r({ timeout: true }), ms))),
    ]).finally(() => {
      clearTimeout(timer);
      abort.abort();
    });
  }

  /** The session's state, or undefined for an unknown conversation. */
  async getSession(conversationId: string): Promise<SessionState | undefined> {
    try {
      return await this.client.workflow.getHandle(sessionWorkflowId(conversationId)).query(stateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** The conversation's transcript (see TranscriptAnswer), or undefined for an unknown conversation. */
  async getTranscript(conversationId: string): Promise<TranscriptAnswer | undefined> {
    const state = await this.getSession(conversationId);
    if (!state) return undefined;
    if (!state.transcript) {
      if (!TERMINAL_PHASES.includes(state.phase)) return { status: 'pending', reason: 'the session has not ended yet' };
      const desc = await this.client.workflow.getHandle(sessionWorkflowId(conversationId)).describe();
      if (desc.status.name === 'RUNNING') return { status: 'pending', reason: 'the session is ending' };
      return {
        status: 'none',
        reason: state.runwaySessionIds.length ? 'the transcript fetch could not start (see the session events)' : 'the session created no Runway session',
      };
    }
    const handle = this.client.workflow.getHandle<typeof avatarTranscript>(state.transcript.workflowId);
    const desc = await handle.describe();
    if (desc.status.name === 'RUNNING') return { status: 'pending', reason: 'waiting for Runway to finalize the transcript' };
    try {
      return await handle.result();
    } catch (err) {
      return { status: 'none', reason: `the transcript fetch failed: ${(err as Error).message}` };
    }
  }

  /** Ends the session; idempotent, and a session that already ended is fine. Returns false for an unknown conversation. */
  async endSession(conversationId: string, reason = 'requested'): Promise<boolean> {
    const handle = this.client.workflow.getHandle(sessionWorkflowId(conversationId));
    try {
      await handle.signal(endSignal, reason);
      return true;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      // Not running: either it already ended (fine) or it never existed.
      try {
        await handle.describe();
        return true;
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return false;
        throw e;
      }
    }
  }

  /**
   * Tells a session what LiveKit reported about its direct avatar (the API's webhook route). False
   * when no such session is running.
   */
  async notifyAvatarRoomEvent(conversationId: string, ev: AvatarRoomEvent): Promise<boolean> {
    try {
      await this.client.workflow.getHandle(sessionWorkflowId(conversationId)).signal(avatarRoomEventSignal, ev);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /** Sessions from Temporal visibility (eventually consistent), newest first. */
  async *listSessions(filter: { phase?: SessionPhase; running?: boolean; roomName?: string; pageSize?: number } = {}): AsyncIterable<SessionSummary> {
    const clauses = [`WorkflowType = '${SESSION_WORKFLOW_TYPE}'`];
    if (filter.phase) clauses.push(`${PhaseKey.name} = '${filter.phase}'`);
    if (filter.roomName) clauses.push(`${LiveKitRoomKey.name} = '${filter.roomName.replace(/['\\]/g, '')}'`);
    if (filter.running) clauses.push(`ExecutionStatus = 'Running'`);
    for await (const info of this.client.workflow.list({ query: clauses.join(' AND '), pageSize: filter.pageSize })) {
      yield summarize(info);
    }
  }
}

function summarize(info: WorkflowExecutionInfo): SessionSummary {
  const sa = info.typedSearchAttributes;
  return {
    conversationId: sa.get(ConversationIdKey) ?? info.workflowId.replace(/^avatar-session-/, ''),
    workflowId: info.workflowId,
    runId: info.runId,
    status: info.status.name,
    phase: sa.get(PhaseKey),
    mode: sa.get(ModeKey),
    roomName: sa.get(LiveKitRoomKey),
    billedSeconds: sa.get(BilledSecondsKey),
    startTime: info.startTime,
    closeTime: info.closeTime,
  };
}
