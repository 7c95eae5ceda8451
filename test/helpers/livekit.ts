// Real livekit-server instances for tests, on free ports, stopped after the suite.
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startLiveKitServer, type LiveKitServer } from '../../src/dev/livekit-server';
import { reapChildrenOnExit } from '../../src/dev/child';

reapChildrenOnExit();

export type { LiveKitServer };

const LOG_DIR = path.resolve(__dirname, '..', '..', 'test-artifacts', 'logs');

export async function startTestLiveKit(label = 'livekit', webhookUrls?: string[]): Promise<LiveKitServer> {
  mkdirSync(LOG_DIR, { recursive: true });
  return startLiveKitServer({ label, webhookUrls, logFile: path.join(LOG_DIR, `${label}-${process.pid}.log`) });
}

export function roomService(lk: LiveKitServer): RoomServiceClient {
  return new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
}

export async function joinToken(
  lk: LiveKitServer,
  room: string,
  identity: string,
  opts: { kind?: 'agent' | 'standard'; attributes?: Record<string, string> } = {},
): Promise<string> {
  const at = new AccessToken(lk.apiKey, lk.apiSecret, { identity, ttl: '10m', attributes: opts.attributes });
  if (opts.kind) at.kind = opts.kind;
  at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}
