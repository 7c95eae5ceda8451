// The token this service mints for Runway's avatar worker in direct mode (it joins the customer's room
// with it): that room only, camera and microphone only, and short-lived. A Runway session lasts at
// most 30 minutes, so the token never outlives one by much, however long the conversation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TokenVerifier } from 'livekit-server-sdk';
import { createRunwayActivities } from '../activities/runway';
import type { RunwayClient } from '../src/runway/client';
import type { RealtimeSessionCreateParams } from '../src/runway/types';
import { DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS } from '../src/livekit/tokens';
import { SealedBox } from '../src/secrets/sealed-box';

describe('direct-mode avatar token', () => {
  it('lives at most one Runway session plus provisioning, even for a six-hour conversation', async () => {
    const livekit = { apiKey: 'prodkey', apiSecret: randomBytes(32).toString('hex'), publicUrl: 'wss://lk.example.test' };
    const bodies: RealtimeSessionCreateParams[] = [];
    const runway = { createSession: async (body: RealtimeSessionCreateParams) => (bodies.push(body), { id: 'rs-1' }) } as unknown as RunwayClient;
    const acts = createRunwayActivities({ runway, sealer: new SealedBox(randomBytes(32)), livekit });
    // What the workflow asks for a conversation of maxDurationSeconds 6 h: min(6 h, 6 h + 10 min).
    await acts.createRunwaySession({
      conversationId: 'c1',
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      direct: { roomName: 'customer-room', avatarIdentity: 'runway-avatar-c1', agentIdentity: 'agent', tokenTtlSeconds: 6 * 3600 },
    });
    const integration = bodies[0]!.integration as { type: string; token: string; roomName: string };
    assert.equal(integration.type, 'livekit');
    const claims = await new TokenVerifier(livekit.apiKey, livekit.apiSecret).verify(integration.token);
    const ttl = Number(claims.exp) - Number(claims.nbf ?? Math.floor(Date.now() / 1000));
    assert.ok(ttl <= DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS && DIRECT_AVATAR_TOKEN_MAX_TTL_SECONDS <= 1800 + 600, `token lives ${ttl} s`);
    assert.equal(claims.video?.room, 'customer-room');
    assert.deepEqual(claims.video?.canPublishSources, ['camera', 'microphone']);

    // A short conversation keeps its shorter token.
    await acts.createRunwaySession({
      conversationId: 'c2',
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      direct: { roomName: 'customer-room', avatarIdentity: 'runway-avatar-c2', tokenTtlSeconds: 700 },
    });
    const short = await new TokenVerifier(livekit.apiKey, livekit.apiSecret).verify((bodies[1]!.integration as { token: string }).token);
    assert.ok(Number(short.exp) - Number(short.nbf ?? Math.floor(Date.now() / 1000)) <= 700);
  });
});
