// Activities that talk to Runway: create, wait for READY, consume, end. Each is small and safe to retry
// (create is the one exception, and the workflow treats an ambiguous create specially).
import { activityInfo, heartbeat, sleep, log } from '@temporalio/activity';
import type { RunwayClient } from '../src/runway/client';
import { isRunwayError } from '../src/runway/errors';
import type { RealtimeSessionCreateParams } from '../src/runway/types';
import type { SealedBox } from '../src/secrets/sealed-box';
import { DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS, mintAvatarToken, type LiveKitCredentials } from '../src/livekit/tokens';
import type { AvatarSpec, ToolSpec } from '../workflows/types';
import { asFailure, fail, retryableFailure } from './failures';
import { heartbeatWhile, inRegularActivity } from './heartbeat';
import { CONTEXT_MAX_CHARS, PERSONALITY_MAX_CHARS, conversationSoFar } from './transcript';

/** A create outstanding this long starts heartbeating (at most 0.8 × the heartbeat timeout apart, the SDK throttles). */
const CREATE_HEARTBEAT_MS = 1_000;
export interface RunwayActivityDeps {
  runway: RunwayClient;
  sealer: SealedBox;
  /** The customer's LiveKit: what Runway's avatar worker joins in direct mode. */
  livekit: LiveKitCredentials & { publicUrl: string };
  /** Polling cadence while waiting for READY (tests shorten it). */
  poll?: { initialMs?: number; maxMs?: number; queuedMs?: number };
}

export interface CreateSessionRequest {
  conversationId: string;
  avatar: AvatarSpec;
  maxDuration?: number;
  personality?: string;
  startScript?: string;
  tools?: ToolSpec[];
  /**
   * The conversation was live before (a renewal, or a replacement after a cut): no opening line
   * (`startScript: ''` overrides the avatar's default one, which Runway uses when it is absent), and
   * with `carryContext` (relay mode, where Runway's character converses) the conversation so far,
   * read from these earlier Runway sessions, is added to `personality`.
   */
  continuation?: {
    previousRunwaySessionIds: string[];
    carryContext: boolean;
    /** Relay mode: what the relay saw said in the session being replaced (read from Runway when absent or empty). */
    current?: { runwaySessionId: string; turns: { role: 'user' | 'assistant'; content: string }[] };
  };
  /** Direct mode: Runway's worker joins this room of the customer's LiveKit. */
  direct?: { roomName: string; avatarIdentity: string; agentIdentity?: string; tokenTtlSeconds: number };
}

export type ReadyStatus = { expiresAt: string; polls: number; waitedMs: number; wasQueued: boolean };
export type RunwayStatusSummary = { status: string; failureCode?: string; failure?: string };

/**
 * One ended Runway session's billed seconds: `seconds` when its final duration is known; `later` when
 * Runway has not finalized it yet (or the read failed; worth another read), with the reason.
 */
export type BilledSession = { id: string; seconds: number } | { id: string; later: string };

export type PollProgress = { polls: number; startedAt: number; wasQueued: boolean; delayMs?: number };
export type NotReadyYet = { ready: false; progress: PollProgress };

export function createRunwayActivities(deps: RunwayActivityDeps) {
  /** A continuation's create body: no opening line, and (relay) the conversation so far in `personality`. */
  async function continueConversation(body: RealtimeSessionCreateParams, c: NonNullable<CreateSessionRequest['continuation']>): Promise<void> {
    body.startScript = '';
    if (!c.carryContext || body.personality === undefined) return;
    const room = PERSONALITY_MAX_CHARS - body.personality.length;
    const seen = c.current?.turns.length ? c.current : undefined;
    const earlier = c.previousRunwaySessionIds.filter((id) => id !== seen?.runwaySessionId).slice(-6);
    const context = await conversationSoFar(deps.runway, earlier, Math.min(room, CONTEXT_MAX_CHARS), undefined, seen?.turns);
    if (context) body.personality += context;
  }

  const poll = { initialMs: 250, maxMs: 2000, queuedMs: 5000, ...deps.poll };

  /** The READY poll loop; stops with `{ready: false}` at `windowEnd` (ms) if READY has not come by then. */
  async function pollUntilReady(
    req: { runwaySessionId: string; deadlineSeconds: number; acceptRunning?: boolean },
    resumed: PollProgress | undefined,
    windowEnd: number,
  ): Promise<ReadyStatus | NotReadyYet> {
    const startedAt = resumed?.startedAt ?? Date.now();
    let polls = resumed?.polls ?? 0;
    let wasQueued = resumed?.wasQueued ?? false;
    let delay = resumed?.delayMs ?? poll.initialMs * Math.min(8, 2 ** Math.min(polls, 3));
    const deadline = startedAt + req.deadlineSeconds * 1000;
    for (;;) {
      let wait = 0;
      try {
        const s = await heartbeatWhile(deps.runway.getSession(req.runwaySessionId), { polls, startedAt, wasQueued, delayMs: delay });
        polls++;
        switch (s.status) {
          case 'READY':
            return { expiresAt: s.expiresAt, polls, waitedMs: Date.now() - startedAt, wasQueued };
          case 'RUNNING':
            // Direct mode: Runway's worker may join the customer's room before a poll sees READY.
            if (req.acceptRunning) return { expiresAt: '', polls, waitedMs: Date.now() - startedAt, wasQueued };
            fail('session_ended', 'Runway session is already RUNNING: someone else consumed it', { details: [{ status: s.status }] });
          case 'NOT_READY':
            if (s.queued) wasQueued = true;
            wait = s.queued ? Math.max(delay, poll.queuedMs) : delay;
            delay = Math.min(poll.maxMs, Math.round(delay * 1.5));
            break;
          case 'FAILED':
            // READY came and went between two polls: an expiry, which a new session fixes.
            if (/EXPIRED/i.test(s.failureCode ?? '')) fail('session_expired', `Runway session expired before it could be used (${s.failureCode})`);
            fail('session_failed', `Runway session failed before READY: ${s.failureCode} (${s.failure})`, {
              details: [{ status: s.status, failureCode: s.failureCode }],
            });
          default:
            fail('session_ended', `Runway session ended before READY with status ${s.status}`, { details: [{ status: s.status }] });
        }
      } catch (err) {
        if (isRunwayError(err) && err.retryable) {
          wait = Math.max(err.retryAfterMs ?? delay, 100);
          log.warn('status poll failed, retrying', { kind: err.kind, waitMs: wait });
        } else {
          asFailure(err);
        }
      }
      if (Date.now() + wait > deadline) {
        fail(
          'ready_timeout',
          `Runway session ${req.runwaySessionId} was not READY within ${req.deadlineSeconds} s (${polls} polls${wasQueued ? ', queued' : ''})`,
        );
      }
      if (Date.now() + wait > windowEnd) return { ready: false, progress: { polls, startedAt, wasQueued, delayMs: delay } };
      if (!activityInfo().isLocal) heartbeat({ polls, startedAt, wasQueued, delayMs: delay }); // local activities have no heartbeat
      await sleep(wait);
    }
  }

  /** One attempt at a session's final duration (see readBilledSeconds). */
  async function billedOnce(id: string): Promise<BilledSession> {
    const s = await deps.runway.getSession(id);
    if (s.status === 'COMPLETED') return { id, seconds: s.duration };
    if (s.status !== 'FAILED' && s.status !== 'CANCELLED') return { id, later: `still ${s.status}` };
    // FAILED and CANCELLED carry no duration in the status shape: the conversation record does.
    const c = await deps.runway.getConversation(id);
    if (c.duration !== null) return { id, seconds: c.duration };
    // Never started (READY expired, cancelled while provisioning, failed before running): nothing ran.
    if (c.startedAt === null) return { id, seconds: 0 };
    return { id, later: 'Runway has not finalized its duration yet' };
  }

  return {
    /**
     * The final `duration` (billed seconds) of ended Runway sessions: the status when COMPLETED, else
     * the conversation record. Never fails for one session: what cannot be read now comes back as
     * `later` (a transient error gets one more try after 500 ms), so a billing read never holds up
     * anything else. See docs/cost.md.
     */
    async readBilledSeconds(req: { runwaySessionIds: string[] }): Promise<{ sessions: BilledSession[] }> {
      const sessions = await Promise.all(
        req.runwaySessionIds.map(async (id): Promise<BilledSession> => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await billedOnce(id);
            } catch (err) {
              if (attempt < 2 && isRunwayError(err) && err.retryable) {
                await sleep(Math.min(err.retryAfterMs ?? 500, 2000));
                continue;
              }
              return { id, later: isRunwayError(err) ? `${err.kind}: ${err.message}` : String(err) };
            }
          }
        }),
      );
      return { sessions };
    },

    /** POST /v1/realtime_sessions. The integration token is minted here, so it never enters history. */
    async createRunwaySession(req: CreateSessionRequest): Promise<{ runwaySessionId: string }> {
      const body: RealtimeSessionCreateParams = {
        model: 'gwm1_avatars',
        avatar: req.avatar as RealtimeSessionCreateParams['avatar'],
        ...(req.maxDuration !== undefined ? { maxDuration: req.maxDuration } : {}),
        ...(req.personality !== undefined ? { personality: req.personality } : {}),
        ...(req.startScript !== undefined ? { startScript: req.startScript } : {}),
        ...(req.tools ? { tools: req.tools as RealtimeSessionCreateParams['tools'] } : {}),
      };
      if (req.direct) {
        const token = await mintAvatarToken(deps.livekit, {
          roomName: req.direct.roomName,
          identity: req.direct.avatarIdentity,
          agentIdentity: req.direct.agentIdentity,
          // The workflow asks for up to 6 h (its conversation's length); one Runway session needs far less.
          ttlSeconds: Math.min(req.direct.tokenTtlSeconds, DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS),
        });
        body.integration = {
          type: 'livekit',
          url: deps.livekit.publicUrl,
          token,
          roomName: req.direct.roomName,
          ...(req.direct.agentIdentity ? { agentIdentity: req.direct.agentIdentity } : {}),
        };
      }
      if (req.continuation) await continueConversation(body, req.continuation);
      // When the request left: a lost answer's session, if any, was made after this (the reaper's window).
      const sentAt = Date.now();
      // Heartbeats while a slow create is outstanding, so a worker that dies under it is noticed within
      // the heartbeat timeout rather than the activity's whole start-to-close (the create is not retried
      // blindly either way: the workflow records the lost answer). A fast create sends none.
      const beat = inRegularActivity() ? setInterval(() => heartbeat(), CREATE_HEARTBEAT_MS) : undefined;
      try {
        const { id } = await deps.runway.createSession(body);
        return { runwaySessionId: id };
      } catch (err) {
        if (req.continuation && body.startScript === '' && isRunwayError(err) && err.kind === 'invalid_request' && /startScript/i.test(err.message)) {
          // Refused before anything was made (a 400): Runway would not take an empty opening line. Without
          // it the avatar's default opening line may play again, which beats no renewal.
          log.warn('Runway refused an empty startScript; renewing without it', { error: err.message });
          delete body.startScript;
          try {
            return { runwaySessionId: (await deps.runway.createSession(body)).id };
          } catch (again) {
            return asFailure(again, { sentAt });
          }
        }
        return asFailure(err, { sentAt });
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Polls GET /v1/realtime_sessions/:id until READY: fast at first, slower while queued, honouring
     * rate-limit delays. Heartbeats carry progress, so a retry on another worker resumes the backoff.
     */
    async waitUntilReady(req: { runwaySessionId: string; deadlineSeconds: number; acceptRunning?: boolean; progress?: PollProgress }): Promise<ReadyStatus> {
      const resumed = (activityInfo().heartbeatDetails as PollProgress | undefined) ?? req.progress;
      return (await pollUntilReady(req, resumed, Infinity)) as ReadyStatus;
    },

    /**
     * The first READY polls, for at most `windowSeconds` (run as a local activity: most sessions are
     * READY within a second or two, and this costs no task-queue round trip). Not READY yet is an
     * answer (`ready: false`, with the progress so far), and the workflow then waits with waitUntilReady.
     */
    async checkReadySoon(req: {
      runwaySessionId: string;
      deadlineSeconds: number;
      acceptRunning?: boolean;
      windowSeconds: number;
    }): Promise<ReadyStatus | NotReadyYet> {
      return await pollUntilReady(req, undefined, Date.now() + req.windowSeconds * 1000);
    },

    /**
     * POST /v1/realtime_sessions/:id/consume with the session key. Runway's room credentials come back
     * sealed, so history only holds ciphertext. Consume works once: never retried blindly.
     */
    async consumeRunwaySession(req: { runwaySessionId: string }): Promise<{ sealedCredentials: string; roomName: string }> {
      try {
        const s = await deps.runway.getSession(req.runwaySessionId);
        if (s.status !== 'READY') fail('not_ready', `cannot consume: Runway session is ${s.status}`, { details: [{ status: s.status }] });
        if (Date.parse(s.expiresAt) <= Date.now()) fail('session_expired', `Runway session expired at ${s.expiresAt} before it was consumed`);
        const creds = await deps.runway.consumeSession(req.runwaySessionId, s.sessionKey);
        return { sealedCredentials: deps.sealer.seal(creds), roomName: creds.roomName };
      } catch (err) {
        return asFailure(err);
      }
    },

    async getRunwaySessionStatus(req: { runwaySessionId: string }): Promise<RunwayStatusSummary> {
      try {
        const s = await deps.runway.getSession(req.runwaySessionId);
        return { status: s.status, ...(s.status === 'FAILED' ? { failureCode: s.failureCode, failure: s.failure } : {}) };
      } catch (err) {
        if (isRunwayError(err) && err.kind === 'not_found') return { status: 'NOT_FOUND' };
        return asFailure(err);
      }
    },

    /**
     * Makes sure a Runway session ends: waits up to `graceSeconds` for END_CALL to complete it, then
     * DELETEs it. Already terminal, unknown (404), or a DELETE refused because the session just ended
     * is success. Every other failure is retryable (a 401 while the API key is rotated heals), so the
     * caller's policy decides how long to keep trying.
     */
    async endRunwaySession(req: { runwaySessionId: string; graceSeconds: number }): Promise<{ finalStatus: string; cancelled: boolean }> {
      const terminal = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'NOT_FOUND']);
      const statusOf = async () => {
        try {
          return (await heartbeatWhile(deps.runway.getSession(req.runwaySessionId))).status as string;
        } catch (err) {
          if (isRunwayError(err) && err.kind === 'not_found') return 'NOT_FOUND';
          return retryableFailure(err);
        }
      };
      const graceEnd = Date.now() + req.graceSeconds * 1000;
      let status = await statusOf();
      // Only a RUNNING session has an avatar that can act on END_CALL: anything earlier is cancelled now.
      let wait = 200;
      while (status === 'RUNNING' && Date.now() < graceEnd) {
        if (!activityInfo().isLocal) heartbeat(); // run as a local activity by sessions, as a regular one by the reaper
        await sleep(Math.min(wait, Math.max(1, graceEnd - Date.now())));
        wait = Math.min(1000, wait * 2);
        status = await statusOf();
      }
      if (terminal.has(status)) return { finalStatus: status, cancelled: false };
      try {
        await heartbeatWhile(deps.runway.cancelSession(req.runwaySessionId));
      } catch (err) {
        if (!(isRunwayError(err) && err.kind === 'not_found')) {
          // Refused (e.g. 400/409): if the session ended meanwhile, that is what we wanted.
          const now = await statusOf();
          if (terminal.has(now)) return { finalStatus: now, cancelled: false };
          retryableFailure(err);
        }
      }
      return { finalStatus: await statusOf(), cancelled: true };
    },
  };
}
