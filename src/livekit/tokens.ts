// Token minting for the customer's LiveKit room: one function per participant this service brings in.
import { AccessToken, TrackSource } from 'livekit-server-sdk';

export interface LiveKitCredentials {
  apiKey: string;
  apiSecret: string;
}

export const PUBLISH_ON_BEHALF = 'lk.publish_on_behalf';

/**
 * The longest a direct-mode avatar token needs to live: Runway's avatar worker joins once, early in a
 * Runway session, and a Runway session lasts at most 30 minutes (its `maxDuration` cap); 10 minutes on
 * top cover provisioning. A leaked token is then useless long before the conversation ends (renewals
 * mint a fresh one for each Runway session).
 */
export const DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS = 1800 + 600;

function onBehalf(agentIdentity?: string): Record<string, string> | undefined {
  return agentIdentity ? { [PUBLISH_ON_BEHALF]: agentIdentity } : undefined;
}

export interface ParticipantTokenOptions {
  roomName: string;
  identity: string;
  /** The customer's agent: front ends and agents then treat this participant as its avatar. */
  agentIdentity?: string;
  ttlSeconds: number;
}

/**
 * A token for a participant that stands for the avatar in the customer's room: Runway's avatar
 * worker (direct mode) or this service's bridge (relay mode). Only that room, publishes only camera
 * and microphone, kind agent with lk.publish_on_behalf (like every LiveKit avatar plugin), bounded TTL.
 */
export async function mintAvatarToken(creds: LiveKitCredentials, opts: ParticipantTokenOptions): Promise<string> {
  const at = new AccessToken(creds.apiKey, creds.apiSecret, {
    identity: opts.identity,
    name: 'Runway avatar',
    ttl: Math.max(60, Math.ceil(opts.ttlSeconds)),
    attributes: onBehalf(opts.agentIdentity),
  });
  at.kind = 'agent';
  at.addGrant({
    roomJoin: true,
    room: opts.roomName,
    canPublish: true,
    canPublishSources: [TrackSource.CAMERA, TrackSource.MICROPHONE],
    canSubscribe: true,
    canPublishData: true,
  });
  return at.toJwt();
}

/**
 * A token for someone who only watches and listens in the customer's room (the demo page): that
 * room only, subscribe only (no publishing of tracks or data), short TTL. LiveKit checks the TTL
 * when the viewer joins; a connected viewer stays connected.
 */
export async function mintViewerToken(creds: LiveKitCredentials, opts: { roomName: string; identity: string; ttlSeconds: number }): Promise<string> {
  const at = new AccessToken(creds.apiKey, creds.apiSecret, { identity: opts.identity, name: 'Demo viewer', ttl: Math.max(30, Math.ceil(opts.ttlSeconds)) });
  at.addGrant({ roomJoin: true, room: opts.roomName, canSubscribe: true, canPublish: false, canPublishData: false, canUpdateOwnMetadata: false });
  return at.toJwt();
}

/** The identity the demo page speaks as in a demo session's room (it starts sessions with this agentIdentity). */
export function demoAgentIdentity(conversationId: string): string {
  return `demo-agent-${conversationId}`;
}

/**
 * A token for the demo page to stand in for the customer's agent in a direct-mode session (demo only):
 * identity `demo-agent-<conversationId>`, kind agent, that room only, data only (byte streams and
 * RPC to the avatar): no publishing or subscribing of tracks, short TTL.
 */
export async function mintDemoAgentToken(creds: LiveKitCredentials, opts: { roomName: string; conversationId: string; ttlSeconds: number }): Promise<string> {
  const at = new AccessToken(creds.apiKey, creds.apiSecret, {
    identity: demoAgentIdentity(opts.conversationId),
    name: 'Demo agent',
    ttl: Math.max(30, Math.ceil(opts.ttlSeconds)),
  });
  at.kind = 'agent';
  at.addGrant({ roomJoin: true, room: opts.roomName, canSubscribe: false, canPublish: false, canPublishData: true, canUpdateOwnMetadata: false });
  return at.toJwt();
}
