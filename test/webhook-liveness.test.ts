// Liveness by events, not polling: LiveKit's webhooks reach the API, which signals the session when
// its direct avatar leaves the customer's room or stops publishing video. The live safety check runs
// only every few minutes here, so only the webhook can end the session within the test's deadline.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startApiServer } from '../src/api/server';
import { freePort } from '../src/dev/net';
import { createLogger } from '../src/log';
import { sessionWorkflowId } from '../workflows/shared';
import type { SessionInput } from '../workflows/types';
import { roomService } from './helpers/livekit';
import { startSessionStack, uniqueId, type SessionStack } from './helpers/session-stack';
import { eventually } from './helpers/wait';

describe('webhooks drive liveness', () => {
  let stack: SessionStack;
  let api: Awaited<ReturnType<typeof startApiServer>>;
  before(async () => {
    const port = await freePort();
    stack = await startSessionStack({ webhookPort: port, sim: { defaults: { provisioningMs: 100, avatarMedia: 'light' } } });
    api = await startApiServer({
      config: { apiToken: 'x'.repeat(32), apiPort: port, livekit: stack.config.livekit },
      sessions: stack.sessions,
      log: createLogger({ level: 'silent' }),
      port,
    });
  });
  after(async () => {
    await api?.close();
    await stack?.stop();
  });

  function input(): SessionInput {
    const conversationId = uniqueId('hook');
    return {
      conversationId,
      avatar: { type: 'runway-preset', presetId: 'cooking-teacher' },
      livekit: { roomName: `room-${conversationId}` },
      mode: 'direct',
      // The safety check would notice in 5 minutes; the test waits 30 s at most.
      timing: { readyDeadlineSeconds: 20, avatarJoinTimeoutSeconds: 10, monitorIntervalSeconds: 300, endCallGraceSeconds: 3, heartbeatTimeoutSeconds: 5 },
    };
  }

  it('the avatar removed from the room ends its session at once (LiveKit participant_left → signal)', async () => {
    const inp = input();
    const { live } = await stack.sessions.startAndWaitLive(inp);
    const removedAt = Date.now();
    await roomService(stack.customer).removeParticipant(inp.livekit.roomName, live.avatarIdentity);
    const handle = stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId));
    await eventually('session closed after the avatar left', async () => ((await handle.describe()).status.name === 'RUNNING' ? undefined : true), 30_000, 100);
    const state = await stack.sessions.getSession(inp.conversationId);
    assert.equal(state?.endReason, 'runway_ended');
    assert.ok(
      state?.events.some((e) => e.type === 'runway_ended'),
      JSON.stringify(state?.events),
    );
    const ended = state.events.find((e) => e.type === 'runway_ended')!;
    // A figure, not a bound: how long from removal to the workflow's reaction.
    console.log(`webhook liveness: the session noticed the avatar leave ${Date.parse(ended.at) - removedAt} ms after its removal`);
    await eventually('no orphaned Runway sessions', () => (stack.sim.orphans().length === 0 ? true : undefined), 15_000);
  });

  it('a webhook about another room or an unknown avatar changes nothing', async () => {
    const inp = input();
    await stack.sessions.startAndWaitLive(inp);
    // The same identity's participant_left for a room the session is not in: ignored by the workflow.
    const other = await stack.sessions.notifyAvatarRoomEvent(inp.conversationId, {
      event: 'participant_left',
      roomName: 'another-room',
      identity: `runway-avatar-${inp.conversationId}`,
      participantSid: 'PA_x',
    });
    assert.equal(other, true);
    const stale = await stack.sessions.notifyAvatarRoomEvent(inp.conversationId, {
      event: 'participant_left',
      roomName: inp.livekit.roomName,
      identity: `runway-avatar-${inp.conversationId}`,
      participantSid: 'PA_not_the_live_one',
    });
    assert.equal(stale, true);
    assert.equal(
      await stack.sessions.notifyAvatarRoomEvent('no-such-conversation', {
        event: 'participant_left',
        roomName: 'r',
        identity: 'runway-avatar-no-such-conversation',
        participantSid: 'PA_y',
      }),
      false,
    );
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await stack.sessions.getSession(inp.conversationId))?.phase, 'live');
    await stack.sessions.endSession(inp.conversationId);
    await stack.env.client.workflow.getHandle(sessionWorkflowId(inp.conversationId)).result();
  });
});
