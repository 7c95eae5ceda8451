// The media relay activity (relay mode), served by the media worker on the `avatar-media` queue. It
// runs as long as the session is live: heartbeats carry the relay's stats (and deliver cancellation),
// a stall fails it so the workflow can re-bridge, and cancellation sends END_CALL into Runway's room
// and leaves both rooms before it returns.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ServiceConfig } from '../src/config';
import { mintAvatarToken } from '../src/livekit/tokens';
import { MediaRelay, type RelayStats } from '../src/media/relay';
import type { RoomCredentials } from '../src/runway/types';
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
  /** No avatar video for this long fails the relay (retryable: the workflow re-bridges). */
  stallSeconds?: number;
  heartbeatMs?: number;
}

export function createRelayActivities(deps: RelayDeps) {
  const sealer = new SealedBox(deps.config.secretsKey);
  return {
    async relayMedia(req: RelayRequest): Promise<RelayEnd> {
      const ctx = Context.current();
      const client = ctx.client; // captured now: rtc-node callbacks run outside the activity's context
      const runway = sealer.open<RoomCredentials>(req.sealedCredentials);
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
        stallSeconds: deps.stallSeconds ?? 10,
        onBridged: () => {
          const { workflowExecution } = ctx.info;
          if (!workflowExecution) return;
          void client.workflow.getHandle(workflowExecution.workflowId, workflowExecution.runId)
            .signal(relayBridgedSignal, { runwaySessionId: req.runwaySessionId, bridgedAt: new Date().toISOString() })
            .catch((err) => ctx.log.warn('could not report the bridge to the workflow', { error: String(err) }));
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
      let cancelled = false;
      try {
        ctx.heartbeat(relay.stats());
        await Promise.race([relay.start(), ctx.cancelled]);
        const reason = await Promise.race([relay.ended, ctx.cancelled]);
        if (reason === 'stalled') {
          ctx.metricMeter.createCounter('avatar_relay_stalls', 'relays', 'Relays failed for lack of avatar video').add(1);
          throw ApplicationFailure.retryable(`no avatar video from Runway's room for ${deps.stallSeconds ?? 10} s`, 'relay_stalled', relay.stats());
        }
        return { reason, stats: relay.stats() };
      } catch (err) {
        if (err instanceof CancelledFailure) cancelled = true;
        throw err;
      } finally {
        clearInterval(beat);
        // Cancelled: the session is ending, so Runway's character ends the call too. Otherwise (a
        // stall, a lost room) Runway's session may be bridged again by the retry: leave it running.
        await relay.stop({ endCall: cancelled });
      }
    },
  };
}
