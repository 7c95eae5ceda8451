// The media relay activity (relay mode), served by the media worker on the `avatar-media` queue. It
// runs as long as the session is live: heartbeats carry the relay's stats (and deliver cancellation),
// a stall fails it so the workflow can re-bridge, and cancellation by the workflow sends END_CALL into
// Runway's room and leaves both rooms before it rethrows. A cancellation that is NOT the workflow's
// (worker shutdown, heartbeat timeout, activity gone) leaves both rooms quietly instead: Runway's
// session stays up for the retry on another media worker, which reuses the same consumed credentials.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ServiceConfig } from '../src/config';
import { mintAvatarToken } from '../src/livekit/tokens';
import { MediaRelay, RelayError, type RelayStats } from '../src/media/relay';
import type { RoomCredentials } from '../src/runway/types';
import { redactString } from '../src/redact';
import { SealedBox } from '../src/secrets/sealed-box';
import { relayBridgedSignal } from '../workflows/shared';

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

export type RelayEnd = { reason: 'runway_ended' | 'room_closed'; stats: RelayStats };

export interface RelayDeps {
  config: Pick<ServiceConfig, 'livekit' | 'secretsKey'>;
  /** No avatar video for this long fails the relay (retryable: the workflow re-bridges). Default 10. */
  stallSeconds?: number;
  heartbeatMs?: number;
  /** Joining both rooms must finish within this (retryable failure otherwise). Default 30. */
  connectTimeoutSeconds?: number;
}

/** Did the workflow ask for this cancellation (the session is ending), as opposed to a worker shutdown or timeout? */
function cancelledByWorkflow(ctx: Context, err: CancelledFailure): boolean {
  return ctx.cancellationDetails?.cancelRequested === true || err.message === 'CANCELLED';
}

export function createRelayActivities(deps: RelayDeps) {
  const sealer = new SealedBox(deps.config.secretsKey);
  const stallSeconds = deps.stallSeconds ?? 10;
  return {
    async relayMedia(req: RelayRequest): Promise<RelayEnd> {
      const ctx = Context.current();
      const client = ctx.client; // captured now: rtc-node callbacks run outside the activity's context
      let runway: RoomCredentials;
      try {
        runway = sealer.open<RoomCredentials>(req.sealedCredentials);
      } catch {
        // Another worker (with the right SESSION_SECRETS_KEY) may open them: retryable.
        throw ApplicationFailure.retryable("could not open Runway's sealed room credentials (SESSION_SECRETS_KEY differs?)", 'relay_credentials');
      }
      const token = await mintAvatarToken(deps.config.livekit, {
        roomName: req.roomName,
        identity: req.bridgeIdentity,
        agentIdentity: req.agentIdentity,
        ttlSeconds: Math.min(req.maxSeconds + 600, 24 * 3600),
      });
      const relay = new MediaRelay({
        runway: { url: runway.url, token: runway.token },
        customer: { url: deps.config.livekit.url, token },
        listenTo: req.listenTo,
        exclude: req.agentIdentity ? [req.agentIdentity] : [],
        stallSeconds,
        onBridged: () => {
          const { workflowExecution } = ctx.info;
          if (!workflowExecution) return; // started outside a workflow (never in this service)
          void client.workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId)
            .signal(relayBridgedSignal, { runwaySessionId: req.runwaySessionId, bridgedAt: new Date().toISOString() })
            .catch((err) => ctx.log.warn('could not report the bridge to the workflow', { error: redactString(String(err)) }));
        },
      });
      // Relay stats: in every heartbeat (visible in the UI's pending activity) and as metrics.
      const forwarded = ctx.metricMeter.createCounter('avatar_relay_video_frames', 'frames', 'Avatar video frames relayed into customer rooms');
      const mixed = ctx.metricMeter.createCounter('avatar_relay_mixed_audio_frames', 'frames', 'Mixed customer audio frames sent to Runway');
      let last = relay.stats();
      const beat = setInterval(() => {
        const now = relay.stats();
        forwarded.add(now.videoFramesForwarded - last.videoFramesForwarded);
        mixed.add(now.mixedFramesSent - last.mixedFramesSent);
        last = now;
        ctx.heartbeat(now);
      }, deps.heartbeatMs ?? 1000);
      let connectTimer: NodeJS.Timeout | undefined;
      let endCall = false;
      try {
        ctx.heartbeat(relay.stats());
        const connectSeconds = deps.connectTimeoutSeconds ?? 30;
        const connected = Promise.race([
          relay.start(),
          new Promise<never>((_, reject) => (connectTimer = setTimeout(
            () => reject(ApplicationFailure.retryable(`could not join both rooms within ${connectSeconds} s`, 'relay_connect_failed')),
            connectSeconds * 1000,
          ))),
        ]).finally(() => clearTimeout(connectTimer));
        const reason = await Promise.race([connected.then(() => relay.ended), relay.ended, ctx.cancelled]);
        if (reason === 'stalled') {
          ctx.metricMeter.createCounter('avatar_relay_stalls', 'relays', 'Relays failed for lack of avatar video').add(1);
          throw ApplicationFailure.retryable(`no avatar video from Runway's room for ${stallSeconds} s`, 'relay_stalled', relay.stats());
        }
        return { reason, stats: relay.stats() };
      } catch (err) {
        if (err instanceof CancelledFailure) {
          // The session is ending: Runway's character ends the call. Any other cancellation (this worker
          // shutting down, a heartbeat timeout) leaves Runway's session to the retry.
          endCall = cancelledByWorkflow(ctx, err);
          throw err;
        }
        if (err instanceof ApplicationFailure) throw err;
        if (err instanceof RelayError) throw ApplicationFailure.retryable(redactString(err.message), err.kind, relay.stats());
        // Joining a room failed, or something unexpected: retryable, without any secret in the message.
        throw ApplicationFailure.retryable(redactString(err instanceof Error ? err.message : String(err)), 'relay_failed');
      } finally {
        clearTimeout(connectTimer);
        await relay.stop({ endCall });
        clearInterval(beat);
      }
    },
  };
}
