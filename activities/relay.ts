// The media relay activity (relay mode), served by the media worker on the `avatar-media` queue.
// Placeholder until the bridge lands: it fails loudly and non-retryably so no session pretends to be live.
import { fail } from './failures';

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

export type RelayEnd = { reason: 'runway_ended' | 'room_closed' | 'stalled'; stats: Record<string, number> };

export function createRelayActivities(_deps: unknown = {}) {
  return {
    async relayMedia(_req: RelayRequest): Promise<RelayEnd> {
      fail('relay_unavailable', 'relay mode is not available in this build: the media relay is not implemented yet');
    },
  };
}
