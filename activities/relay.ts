// The media relay activity (relay mode), served by the media worker on the `avatar-media` queue. It
// runs as long as the session is live: heartbeats carry the relay's stats (and deliver cancellation),
// a stall fails it so the workflow can re-bridge, and cancellation by the workflow sends END_CALL into
// Runway's room and leaves both rooms before it rethrows. A cancellation that is NOT the workflow's
// (worker shutdown, heartbeat timeout, activity gone) leaves both rooms quietly instead: Runway's
// session stays up for the retry on another media worker, which reuses the same consumed credentials.
//
// Renewal (continue-as-new) keeps the bridge in the customer's room: switchRelaySource() moves the live
// relay to the next Runway session's room and hands it over: the relay activity returns 'handed_over'
// at once and parks the relay in this process instead of stopping it, and the next run's relayMedia
// (routed to this worker's own task queue) adopts it. A parked relay nobody adopts leaves both rooms
// after a while.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { WorkflowNotFoundError } from '@temporalio/client';
import { codecKeys, type ServiceConfig } from '../src/config';
import { mintAvatarToken } from '../src/livekit/tokens';
import { MediaRelay, RelayError, type RelayStats } from '../src/media/relay';
import type { RoomCredentials } from '../src/runway/types';
import { redactString } from '../src/redact';
import { SealedBox } from '../src/secrets/sealed-box';
import { relayBridgedSignal } from '../workflows/shared';

/**
 * The relay attempt at which a stalled avatar ends the session (the retry policy's last). Attempts
 * count media worker losses too (a chaos run with 3 failed 4 relay sessions after worker kills), so
 * not fewer.
 */
const RELAY_STALL_ATTEMPTS = 10;
export interface RelayRequest {
  conversationId: string;
  runwaySessionId: string;
  sealedCredentials: string;
  roomName: string;
  bridgeIdentity: string;
  agentIdentity?: string;
  listenTo?: string[];
  maxSeconds: number;
}

export type RelayEnd = { reason: 'runway_ended' | 'room_closed' | 'handed_over'; stats: RelayStats };

export interface SwitchRequest {
  conversationId: string;
  /** The Runway session the relay must be relaying now (else the switch fails: nothing to switch here). */
  fromRunwaySessionId: string;
  runwaySessionId: string;
  sealedCredentials: string;
  timeoutSeconds: number;
}

/** One live relay of this process. */
interface RelayEntry {
  relay: MediaRelay;
  /** Switched for a renewal: its activity ends 'handed_over' and the relay is parked, not stopped. */
  handover: boolean;
  /** Resolves when a switch hands the relay over (the running relay activity returns). */
  handedOver: Promise<'handed_over'>;
  handOver: () => void;
  /** Parked between two activities (the old run's and the next run's); stopped when the timer fires. */
  parked?: NodeJS.Timeout;
}

export interface RelayDeps {
  config: Pick<ServiceConfig, 'livekit' | 'secretsKey' | 'secretsOldKeys'>;
  /** No avatar video for this long fails the relay (retryable: the workflow re-bridges). Default 10. */
  stallSeconds?: number;
  heartbeatMs?: number;
  /** Joining both rooms must finish within this (retryable failure otherwise). Default 30. */
  connectTimeoutSeconds?: number;
  /** This worker's own task queue (the next run's relay activity is routed here to adopt a parked relay). */
  workerQueue?: string;
  /** How long a relay handed over at a renewal waits to be adopted before it leaves both rooms. Default 60. */
  parkSeconds?: number;
  /** The process's live relays (shared by the worker's queues; stopAll() at shutdown). */
  registry?: RelayRegistry;
}

/** The live relays of one media worker process, by conversation id. */
export class RelayRegistry {
  readonly relays = new Map<string, RelayEntry>();
  /** Leaves every room (at process shutdown: parked relays are not adopted by anyone here any more). */
  async stopAll(): Promise<void> {
    const entries = [...this.relays.values()];
    this.relays.clear();
    for (const e of entries) clearTimeout(e.parked);
    await Promise.allSettled(entries.map((e) => e.relay.stop({ endCall: false })));
  }
}

/** Did the workflow ask for this cancellation (the session is ending), as opposed to a worker shutdown or timeout? */
function cancelledByWorkflow(ctx: Context, err: CancelledFailure): boolean {
  return ctx.cancellationDetails?.cancelRequested === true || err.message === 'CANCELLED';
}

/** Arms an entry's handover latch: not handed over until handOver() is called. */
function armHandover(entry: { relay: MediaRelay } & Partial<RelayEntry>): RelayEntry {
  const e = entry as RelayEntry;
  e.handover = false;
  e.handedOver = new Promise<'handed_over'>((resolve) => {
    e.handOver = () => {
      e.handover = true;
      resolve('handed_over');
    };
  });
  return e;
}

export function createRelayActivities(deps: RelayDeps) {
  // Every key: credentials sealed before a key rotation still open after a restart.
  const sealer = new SealedBox(codecKeys(deps.config));
  const stallSeconds = deps.stallSeconds ?? 10;
  const parkSeconds = deps.parkSeconds ?? 60;
  const { relays } = deps.registry ?? new RelayRegistry();

  function openCredentials(sealed: string): RoomCredentials {
    try {
      return sealer.open<RoomCredentials>(sealed);
    } catch {
      // Another worker (with the right SESSION_SECRETS_KEY) may open them: retryable.
      throw ApplicationFailure.retryable("could not open Runway's sealed room credentials (SESSION_SECRETS_KEY differs?)", 'relay_credentials');
    }
  }

  /**
   * Tells the workflow the avatar is in the customer's room, and which worker queue holds the relay.
   * Repeated until Temporal takes the signal (it may be briefly unreachable), for at most a minute; the
   * workflow also stops waiting for it after a while and asks LiveKit instead.
   */
  function reportBridged(ctx: Context, runwaySessionId: string): void {
    const { workflowExecution } = ctx.info;
    if (!workflowExecution) return; // started outside a workflow (never in this service)
    const handle = ctx.client.workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId);
    const report = { runwaySessionId, bridgedAt: new Date().toISOString(), ...(deps.workerQueue ? { workerQueue: deps.workerQueue } : {}) };
    void (async () => {
      for (let attempt = 1, waitMs = 500; ; attempt++, waitMs = Math.min(10_000, waitMs * 2)) {
        try {
          return await handle.signal(relayBridgedSignal, report);
        } catch (err) {
          // The run is over (not found): nobody to tell. Otherwise try again, up to about a minute.
          if (err instanceof WorkflowNotFoundError || attempt >= 8) {
            ctx.log.warn('could not report the bridge to the workflow', { error: redactString(String(err)), attempt });
            return;
          }
          await new Promise((r) => setTimeout(r, waitMs));
        }
      }
    })();
  }

  /** A parked relay for this session, taken over by the calling activity; or a fresh one. */
  async function relayFor(ctx: Context, req: RelayRequest): Promise<{ relay: MediaRelay; adopted: boolean }> {
    const existing = relays.get(req.conversationId);
    if (existing?.parked && !existing.relay.isStopped && existing.relay.source === req.runwaySessionId) {
      clearTimeout(existing.parked);
      existing.parked = undefined;
      armHandover(existing);
      ctx.log.info('adopted the relay handed over by the previous run', { runwaySessionId: req.runwaySessionId });
      return { relay: existing.relay, adopted: true };
    }
    if (existing) {
      // A leftover of an earlier attempt (or a relay of another Runway session): it must not stay in the rooms.
      relays.delete(req.conversationId);
      clearTimeout(existing.parked);
      await existing.relay.stop({ endCall: false });
    }
    const runway = openCredentials(req.sealedCredentials);
    const token = await mintAvatarToken(deps.config.livekit, {
      roomName: req.roomName,
      identity: req.bridgeIdentity,
      agentIdentity: req.agentIdentity,
      ttlSeconds: Math.min(req.maxSeconds + 600, 24 * 3600),
    });
    const relay = new MediaRelay({
      runway: { url: runway.url, token: runway.token, sessionId: req.runwaySessionId },
      customer: { url: deps.config.livekit.url, token },
      listenTo: req.listenTo,
      exclude: req.agentIdentity ? [req.agentIdentity] : [],
      stallSeconds,
      onBridged: () => reportBridged(ctx, req.runwaySessionId),
    });
    return { relay, adopted: false };
  }

  /** Keeps a handed-over relay running until the next run adopts it, or leaves both rooms if none does. */
  function park(conversationId: string, entry: RelayEntry): void {
    entry.parked = setTimeout(() => {
      if (relays.get(conversationId) === entry) relays.delete(conversationId);
      void entry.relay.stop({ endCall: false });
    }, parkSeconds * 1000);
    // A parked relay that loses its rooms is done.
    entry.relay.ended.then(
      () => entry.parked && void entry.relay.stop({ endCall: false }),
      () => entry.parked && void entry.relay.stop({ endCall: false }),
    );
  }

  return {
    async relayMedia(req: RelayRequest): Promise<RelayEnd> {
      const ctx = Context.current();
      const { relay, adopted } = await relayFor(ctx, req);
      const entry: RelayEntry = relays.get(req.conversationId)?.relay === relay ? relays.get(req.conversationId)! : armHandover({ relay });
      relays.set(req.conversationId, entry);
      if (adopted) reportBridged(ctx, req.runwaySessionId);
      // Relay stats: in every heartbeat (visible in the UI's pending activity) and as metrics.
      const forwarded = ctx.metricMeter.createCounter('avatar_relay_video_frames', 'frames', 'Avatar video frames relayed into customer rooms');
      const mixed = ctx.metricMeter.createCounter('avatar_relay_mixed_audio_frames', 'frames', 'Mixed customer audio frames sent to Runway');
      let last = relay.stats();
      const beat = setInterval(() => {
        const now = relay.stats();
        forwarded.add(Math.max(0, now.videoFramesForwarded - last.videoFramesForwarded));
        mixed.add(Math.max(0, now.mixedFramesSent - last.mixedFramesSent));
        last = now;
        ctx.heartbeat(now);
      }, deps.heartbeatMs ?? 1000);
      let connectTimer: NodeJS.Timeout | undefined;
      let endCall = false;
      let handedOver = false;
      try {
        ctx.heartbeat(relay.stats());
        const connectSeconds = deps.connectTimeoutSeconds ?? 30;
        const connected = Promise.race([
          relay.start(),
          new Promise<never>(
            (_, reject) =>
              (connectTimer = setTimeout(
                () => reject(ApplicationFailure.retryable(`could not join both rooms within ${connectSeconds} s`, 'relay_connect_failed')),
                connectSeconds * 1000,
              )),
          ),
        ]).finally(() => clearTimeout(connectTimer));
        const reason = await Promise.race([connected.then(() => relay.ended), relay.ended, ctx.cancelled, entry.handedOver]);
        if (reason === 'handed_over') {
          handedOver = !relay.isStopped;
          return { reason, stats: relay.stats() };
        }
        if (reason === 'source_gone') {
          // Not a stall a fresh bridge may fix: the workflow asks Runway whether its session is over.
          throw ApplicationFailure.nonRetryable(`nobody in Runway's room and no avatar video for ${stallSeconds} s`, 'relay_source_gone', relay.stats());
        }
        if (reason === 'stalled') {
          ctx.metricMeter.createCounter('avatar_relay_stalls', 'relays', 'Relays failed for lack of avatar video').add(1);
          // A fresh bridge may see video again (a stuck subscription); an avatar still frozen after a
          // few tries will not recover: the session fails rather than show a frozen face for minutes.
          const message = `no avatar video from Runway's room for ${stallSeconds} s`;
          if (ctx.info.attempt >= RELAY_STALL_ATTEMPTS)
            throw ApplicationFailure.nonRetryable(`${message} (${ctx.info.attempt} tries)`, 'relay_stalled', relay.stats());
          throw ApplicationFailure.retryable(message, 'relay_stalled', relay.stats());
        }
        return { reason, stats: relay.stats() };
      } catch (err) {
        if (err instanceof CancelledFailure) {
          // A renewal switched this relay to the next Runway session: the next run adopts it. Otherwise
          // the session is ending (Runway's character ends the call), or this worker is shutting down /
          // lost its heartbeat, which leaves Runway's session to the retry.
          handedOver = entry.handover && !relay.isStopped;
          endCall = !handedOver && cancelledByWorkflow(ctx, err);
          throw err;
        }
        if (err instanceof ApplicationFailure) throw err;
        if (err instanceof RelayError) throw ApplicationFailure.retryable(redactString(err.message), err.kind, relay.stats());
        // Joining a room failed, or something unexpected: retryable, without any secret in the message.
        throw ApplicationFailure.retryable(redactString(err instanceof Error ? err.message : String(err)), 'relay_failed');
      } finally {
        clearTimeout(connectTimer);
        clearInterval(beat);
        if (handedOver) {
          park(req.conversationId, entry);
        } else {
          if (relays.get(req.conversationId) === entry) relays.delete(req.conversationId);
          await relay.stop({ endCall });
        }
      }
    },

    /**
     * Renewal: what was said so far in the Runway session this process relays (the transcript segments
     * Runway's character sent on the data channel; the recent part), for the next session's context.
     * Routed to the worker queue that runs the relay; `relay_not_here` when this process has none.
     */
    async relayTranscript(req: { conversationId: string; runwaySessionId: string }): Promise<{ turns: { role: 'user' | 'assistant'; content: string }[] }> {
      const entry = relays.get(req.conversationId);
      if (!entry || entry.relay.isStopped)
        throw ApplicationFailure.nonRetryable(`this media worker has no live relay of conversation ${req.conversationId}`, 'relay_not_here');
      return { turns: entry.relay.transcriptOf(req.runwaySessionId).map(({ role, content }) => ({ role, content })) };
    },

    /**
     * Renewal: switches this process's live relay of the conversation to the next Runway session
     * (consumed credentials), with no unpublish in the customer's room; the old session gets END_CALL.
     * Routed to the worker queue that runs the relay. Fails `relay_not_here` when this process has no
     * relay of `fromRunwaySessionId` (the workflow then brings the new session in with a fresh relay).
     */
    async switchRelaySource(req: SwitchRequest): Promise<{ gapMs: number }> {
      const ctx = Context.current();
      const entry = relays.get(req.conversationId);
      const source = entry?.relay.source;
      if (!entry || entry.relay.isStopped || (source !== req.fromRunwaySessionId && source !== req.runwaySessionId)) {
        throw ApplicationFailure.nonRetryable(`this media worker has no live relay of Runway session ${req.fromRunwaySessionId}`, 'relay_not_here');
      }
      const runway = openCredentials(req.sealedCredentials);
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      try {
        const { gapMs } = await Promise.race([
          entry.relay.switchSource({ url: runway.url, token: runway.token, sessionId: req.runwaySessionId }, { timeoutMs: req.timeoutSeconds * 1000 }),
          ctx.cancelled, // the session is ending: the relay's own cancellation leaves every room
        ]);
        entry.handOver();
        ctx.log.info('relay switched to the next Runway session', { runwaySessionId: req.runwaySessionId, gapMs });
        return { gapMs };
      } catch (err) {
        if (err instanceof RelayError) throw ApplicationFailure.nonRetryable(redactString(err.message), err.kind);
        throw err;
      } finally {
        clearInterval(beat);
      }
    },
  };
}
